package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"concierge"
	"concierge/enroll"
	"concierge/eval"
	"concierge/vision"
)

// The clip evaluation replays labelled door-camera clips through the
// daemon's own pipeline (camera, tracks, best frames, check-in decision),
// which photo folders cannot: the frames of one visit are alike, and the
// votes and fused embedding decide on them as they would at the door.

// invalid marks err as a problem with the caller's clips, not a failure of
// Concierge.
func invalid(err error) error { return concierge.Errorf(concierge.EINVALID, "eval: %w", err) }

// person is one labelled person of a clip folder: the photos they are
// enrolled from (none: frames of their first clip) and their clips.
type person struct {
	label  string
	photos []string
	clips  []string
}

// IsClip reports whether a file name is a video clip by its extension.
func IsClip(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".mp4", ".avi", ".mkv", ".mov", ".webm", ".mjpeg", ".mjpg":
		return true
	}
	return false
}

// readDir lists dir's people: dir/LABEL/ holding clips and, optionally,
// enrollment photos, or dir/NAME.mp4, one person per clip. Labels become
// customer ids, so they must be valid ones.
func readDir(dir string) ([]person, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var people []person
	for _, e := range ents {
		p := person{label: e.Name()}
		switch {
		case e.IsDir():
			sub, err := os.ReadDir(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil, err
			}
			for _, f := range sub {
				path := filepath.Join(dir, e.Name(), f.Name())
				switch {
				case f.IsDir():
				case IsClip(f.Name()):
					p.clips = append(p.clips, path)
				case eval.IsPhoto(f.Name()):
					p.photos = append(p.photos, path)
				}
			}
		case IsClip(e.Name()):
			p.label = strings.TrimSuffix(e.Name(), filepath.Ext(e.Name()))
			p.clips = []string{filepath.Join(dir, e.Name())}
		default:
			continue
		}
		if len(p.clips) == 0 {
			continue
		}
		if !enroll.ValidID(p.label) {
			return nil, fmt.Errorf("%s: label %q: want 1-64 letters, digits, '-', '_' or '.' (it becomes a customer id)", dir, p.label)
		}
		if slices.ContainsFunc(people, func(q person) bool { return q.label == p.label }) {
			return nil, fmt.Errorf("%s: label %q names two people (a folder and a clip of that name?)", dir, p.label)
		}
		people = append(people, p)
	}
	if len(people) < 2 {
		return nil, fmt.Errorf("%s: %d labelled people with clips; want at least 2, so that each is a stranger to the others", dir, len(people))
	}
	return people, nil
}

// Frames keeps the frames numbered at of a clip as JPEG photos (the
// first frame is 1), to enroll a person from.
func Frames(ctx context.Context, clip string, at []int64) ([]enroll.Photo, error) {
	src, err := vision.NewSource(vision.SourceConfig{Source: clip})
	if err != nil {
		return nil, err
	}
	// Stop reading once the last wanted frame is in: a door clip may be long.
	readCtx, stop := context.WithCancel(ctx)
	defer stop()
	last := slices.Max(at)
	want := map[int64]bool{}
	for _, n := range at {
		want[n] = true
	}
	var photos []enroll.Photo
	var ferr error
	src.Run(readCtx, func(f vision.Frame) {
		if f.Seq >= last {
			stop()
		}
		if !want[f.Seq] || ferr != nil {
			return
		}
		b, err := vision.EncodeJPEG(f.Mat, 92)
		if err != nil {
			ferr = err
			return
		}
		photos = append(photos, enroll.Photo{Name: fmt.Sprintf("%s#%d", filepath.Base(clip), f.Seq), Data: b})
	})
	if ferr != nil {
		return nil, fmt.Errorf("%s: %w", clip, ferr)
	}
	if len(photos) != len(at) {
		return nil, fmt.Errorf("%s: found %d of the frames %v", clip, len(photos), at)
	}
	return photos, ctx.Err()
}

// ClipOutcome is what one play of a clip announced.
type ClipOutcome struct {
	Frames int64 `json:"frames"`
	// Embeddings are the decisions' material: each is a chance for a
	// stranger to be taken for someone.
	Embeddings int64    `json:"embeddings"`
	Alerts     int      `json:"alerts"`
	Customers  []string `json:"customers"`
	// Threshold is the recognition threshold in force for the play: the
	// calibrated one follows the gallery's size.
	Threshold float64 `json:"threshold"`
	// Trace is how near the clip's faces came to its person, in the play
	// with the person enrolled.
	Trace *Trace `json:"distances,omitempty"`
}

// ClipRow is one clip played with its person enrolled and again with them
// deleted from the gallery.
type ClipRow struct {
	Label string `json:"label"`
	Clip  string `json:"clip"`
	// EnrolledFrom says the person was enrolled from frames of this clip.
	// Their enrolled play then starts at frame StartFrame, about a second
	// after the last enrollment frame, so that it never sees those frames;
	// the deleted play sees the whole clip.
	EnrolledFrom bool        `json:"enrolled_from"`
	StartFrame   int64       `json:"start_frame"`
	Enrolled     ClipOutcome `json:"enrolled"`
	Deleted      ClipOutcome `json:"deleted"`
}

// ClipSkip is a person left out, with the reason (enrollment refused).
type ClipSkip struct {
	Label  string `json:"label"`
	Reason string `json:"reason"`
}

// ClipTotals count visits: a visit is one play of one clip.
type ClipTotals struct {
	Visits   int `json:"visits"`
	AsSelf   int `json:"announced_as_self"`
	Repeated int `json:"announced_more_than_once"`
	AsOther  int `json:"announced_as_another_customer"`
	Missed   int `json:"missed"`
	// Of the same clips with their person deleted: strangers' visits.
	StrangerVisits  int `json:"stranger_visits"`
	StrangerAlerted int `json:"stranger_visits_announced"`
	// The same, leaving out clips their person was enrolled from.
	OtherClips       int `json:"other_clips"`
	OtherClipsAsSelf int `json:"other_clips_announced_as_self"`
}

// ClipReport is the result of `concierge eval clips`.
type ClipReport struct {
	Source    string  `json:"source"`
	Path      string  `json:"path"`
	Model     string  `json:"model"`
	Margin    float64 `json:"margin"`
	FaceSlack float64 `json:"face_slack"`
	Votes     int     `json:"votes"`
	// Place is how the clips were framed (--clip-scale); nil: as filmed.
	Place   *vision.Placement `json:"place,omitempty"`
	People  int               `json:"people"`
	Skipped []ClipSkip        `json:"skipped"`
	Rows    []ClipRow         `json:"rows"`
	Totals  ClipTotals        `json:"totals"`
}

// enrollGap is how many frames (about a second) an enrolled play of a
// clip leaves out after the last frame its person was enrolled from: the
// frames right after it are nearly the same picture.
const enrollGap = 25

// Clips enrolls every person of dir with svc (from their photos, else from
// the frames enrollAt of their first clip) and plays each clip through pipe
// twice: with everyone enrolled, where one alert naming its person is
// right, and with its person deleted, where any alert is a false one. svc
// must be a throwaway service whose gallery is pipe's: Clips enrolls and
// deletes. The enrolled play traces the distances of the clip's faces to
// its person (Trace).
func Clips(ctx context.Context, pipe *Pipeline, svc *enroll.Service, dir string, enrollAt []int64, place *vision.Placement) (*ClipReport, error) {
	people, err := readDir(dir)
	if err != nil {
		return nil, invalid(err)
	}
	rule := pipe.Checkin
	rep := &ClipReport{Source: "clips", Path: dir, Model: pipe.Embedder.Model(), Margin: rule.Margin, FaceSlack: rule.FaceSlack, Votes: rule.Votes,
		Place: place, Skipped: []ClipSkip{}}
	photos := map[string][]enroll.Photo{}
	enrolled := []person{}
	enrollPerson := func(p person) error {
		_, err := svc.Enroll(ctx, enroll.Request{CustomerID: p.label, DisplayName: p.label, Photos: photos[p.label],
			Consent: enroll.Consent{Reference: "concierge-eval", TextVersion: "eval"}})
		return err
	}
	for _, p := range people {
		if len(p.photos) > 0 {
			for _, path := range p.photos {
				b, err := os.ReadFile(path)
				if err != nil {
					return nil, invalid(err)
				}
				photos[p.label] = append(photos[p.label], enroll.Photo{Name: filepath.Base(path), Data: b})
			}
		} else if photos[p.label], err = Frames(ctx, p.clips[0], enrollAt); err != nil {
			return nil, invalid(err)
		}
		if err := enrollPerson(p); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var ce *concierge.Error
			if !errors.As(err, &ce) || ce.Code != concierge.EINVALID && ce.Code != concierge.ECONFLICT {
				return nil, fmt.Errorf("enroll %s: %w", p.label, err)
			}
			// A refused enrollment (no usable face, a duplicate of
			// someone already enrolled) is the data's, not a failure.
			rep.Skipped = append(rep.Skipped, ClipSkip{Label: p.label, Reason: err.Error()})
			continue
		}
		enrolled = append(enrolled, p)
	}
	rep.People = len(enrolled)
	if len(enrolled) < 2 {
		return nil, invalid(fmt.Errorf("%s: %d people could be enrolled; want at least 2", dir, len(enrolled)))
	}
	if pipe.Logger != nil {
		pipe.Logger.Info("clip people enrolled", "people", len(enrolled), "skipped", len(rep.Skipped))
	}

	play := func(clip string, skip int64, expect string) (ClipOutcome, error) {
		th := svc.Recognition().Threshold
		r, err := pipe.Play(ctx, Run{Name: filepath.Base(clip), Video: clip, Cameras: 1, Skip: skip, Place: place, Expect: expect})
		o := ClipOutcome{Frames: r.Frames, Embeddings: r.Embeddings, Alerts: int(r.Alerts), Customers: []string{}, Threshold: th, Trace: r.Trace}
		for c := range r.Customers {
			o.Customers = append(o.Customers, c)
		}
		sort.Strings(o.Customers)
		return o, err
	}
	for _, p := range enrolled {
		for i, clip := range p.clips {
			row := ClipRow{Label: p.label, Clip: clip, EnrolledFrom: i == 0 && len(p.photos) == 0, StartFrame: 1}
			if row.EnrolledFrom {
				row.StartFrame = slices.Max(enrollAt) + enrollGap + 1
			}
			var err error
			if row.Enrolled, err = play(clip, row.StartFrame-1, p.label); err != nil {
				return nil, fmt.Errorf("play %s: %w", clip, err)
			}
			if _, err := svc.Forget(ctx, p.label); err != nil {
				return nil, fmt.Errorf("delete %s: %w", p.label, err)
			}
			row.Deleted, err = play(clip, 0, "")
			if err == nil {
				err = enrollPerson(p)
			}
			if err != nil {
				return nil, fmt.Errorf("play %s without %s: %w", clip, p.label, err)
			}
			rep.Rows = append(rep.Rows, row)
			rep.Totals.add(row)
		}
	}
	return rep, nil
}

func (t *ClipTotals) add(r ClipRow) {
	t.Visits++
	self := slices.Contains(r.Enrolled.Customers, r.Label)
	switch {
	case len(r.Enrolled.Customers) > 1 || len(r.Enrolled.Customers) == 1 && !self:
		t.AsOther++
	case self:
		t.AsSelf++
		if r.Enrolled.Alerts > 1 {
			t.Repeated++
		}
	default:
		t.Missed++
	}
	if !r.EnrolledFrom {
		t.OtherClips++
		if self && len(r.Enrolled.Customers) == 1 {
			t.OtherClipsAsSelf++
		}
	}
	t.StrangerVisits++
	if r.Deleted.Alerts > 0 {
		t.StrangerAlerted++
	}
}

// WriteText prints the report for a terminal.
func (r *ClipReport) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "Source: clips %s (model %s), %d people enrolled, margin %.2f, face slack %.2f, %d vote(s)\n", r.Path, r.Model, r.People, r.Margin, r.FaceSlack, r.Votes)
	if r.Place != nil {
		fmt.Fprintf(w, "Frames scaled by %.2f in the middle of a %dx%d frame (enrollment from the frames as filmed)\n", r.Place.Scale, r.Place.Width, r.Place.Height)
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "  not enrolled: %s: %s\n", s.Label, s.Reason)
	}
	fmt.Fprintln(w, "Each clip is played with everyone enrolled (one alert naming its person is right; a clip the person was enrolled from is played from")
	fmt.Fprintf(w, "a second after those frames) and with its person deleted (the whole clip; any alert is false).\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "person\tclip\tenrolled: frames\tembeddings\tthreshold\talerts\tcustomers\tdeleted: frames\tembeddings\tthreshold\talerts\tcustomers\t")
	names := func(cs []string) string {
		if len(cs) == 0 {
			return "-"
		}
		return strings.Join(cs, ",")
	}
	for _, row := range r.Rows {
		clip := filepath.Base(row.Clip)
		if row.EnrolledFrom {
			clip += fmt.Sprintf(" (enrolled from; from frame %d)", row.StartFrame)
		}
		e, d := row.Enrolled, row.Deleted
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.3f\t%d\t%s\t%d\t%d\t%.3f\t%d\t%s\t\n", row.Label, clip,
			e.Frames, e.Embeddings, e.Threshold, e.Alerts, names(e.Customers), d.Frames, d.Embeddings, d.Threshold, d.Alerts, names(d.Customers))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := r.writeDistances(w); err != nil {
		return err
	}
	t := r.Totals
	_, err := fmt.Fprintf(w, "Visits of enrolled people: %d; announced as themselves %d (%d more than once), as another customer %d, missed %d\n"+
		"  of clips they were not enrolled from: %d of %d announced as themselves\n"+
		"Visits of strangers (the same clips, their person deleted): %d of %d announced\n",
		t.Visits, t.AsSelf, t.Repeated, t.AsOther, t.Missed, t.OtherClipsAsSelf, t.OtherClips, t.StrangerAlerted, t.StrangerVisits)
	return err
}

// writeDistances prints, per clip, how near its faces came to its person
// in the enrolled play: a face votes within the threshold plus the face
// slack, the fused embedding must be within the threshold.
func (r *ClipReport) writeDistances(w io.Writer) error {
	fmt.Fprintf(w, "Distances to the person in the enrolled play (a face votes within threshold + %.2f, the fused embedding must be within the threshold):\n", r.FaceSlack)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "person\tclip\tthreshold\tfaces\tnearest faces\tfused\t")
	for _, row := range r.Rows {
		t := row.Enrolled.Trace
		if t == nil {
			continue
		}
		near := make([]string, len(t.Nearest))
		for i, d := range t.Nearest {
			near[i] = fmt.Sprintf("%.3f", d)
		}
		fused := "- (not searched: no face voted)"
		if t.Fused != nil {
			fused = fmt.Sprintf("%.3f (nearest of %d)", *t.Fused, t.FusedSearches)
		}
		if len(near) == 0 {
			near = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%d\t%s\t%s\t\n", row.Label, filepath.Base(row.Clip), row.Enrolled.Threshold, t.Faces, strings.Join(near, " "), fused)
	}
	return tw.Flush()
}
