package eval

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"

	"concierge/face"
)

// Sample is one embedded face with the identity it belongs to.
type Sample struct {
	Label string
	// Source names the photo or descriptor, for reporting misses and
	// outliers; it is never an embedding.
	Source    string
	Embedding face.Embedding
}

// Set is a labelled collection of embeddings of one model.
type Set struct {
	Model   string
	Samples []Sample
	// Images is how many photos were tried and Misses those in which the
	// detector found no usable face (0 and nil for descriptor files).
	Images int
	Misses []Miss
	// Dropped are the faces Dedupe removed, and why.
	Dropped []Miss

	dm *distMatrix // built on first use; Samples must not change after
}

// matrix returns the distances between all samples, computing them once.
// A Set is not safe for concurrent use while this first happens.
func (s *Set) matrix() (*distMatrix, error) {
	if s.dm == nil || s.dm.n != len(s.Samples) {
		dm, err := newDistMatrix(s.Samples)
		if err != nil {
			return nil, err
		}
		s.dm = dm
	}
	return s.dm, nil
}

// Miss is a photo that gave no embedding, and why.
type Miss struct {
	Image  string `json:"image"`
	Reason string `json:"reason"` // "no_face" or "unreadable: …"
}

// Labels returns the distinct labels in sorted order.
func (s *Set) Labels() []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s.Samples {
		if !seen[x.Label] {
			seen[x.Label] = true
			out = append(out, x.Label)
		}
	}
	slices.Sort(out)
	return out
}

// byLabel groups sample indexes by label; the labels come back sorted so
// that every seeded draw over them is reproducible.
func (s *Set) byLabel() ([]string, map[string][]int) {
	groups := map[string][]int{}
	for i, x := range s.Samples {
		groups[x.Label] = append(groups[x.Label], i)
	}
	return s.Labels(), groups
}

// Pairs returns the distance of every pair of samples, split into genuine
// (same label) and impostor pairs.
func (s *Set) Pairs() (genuine, impostor []float64, err error) {
	dm, err := s.matrix()
	if err != nil {
		return nil, nil, err
	}
	for i := range s.Samples {
		for j := i + 1; j < len(s.Samples); j++ {
			d := dm.at(i, j)
			if s.Samples[i].Label == s.Samples[j].Label {
				genuine = append(genuine, d)
			} else {
				impostor = append(impostor, d)
			}
		}
	}
	return genuine, impostor, nil
}

// DefaultDuplicate is the distance at or below which two faces are taken
// for the same photo. Different photos of one person lie well above it
// (dlib: rarely below 0.15; unit-norm engines higher still), while a photo
// cropped or compressed twice lies below. On idols-descriptors.json the
// faces shared between labels fall at 0–0.085 and the next pair at 0.217.
const DefaultDuplicate = 0.1

// Dedupe drops faces that are the same photo twice, because both kinds
// distort every rate: a face filed under two labels (label noise, e.g. a
// group photo attributed to several members) counts as an impostor pair
// at distance ~0 and alone sets the false-accept tail, so every copy is
// dropped, as its true label is unknown; a face repeated under its own
// label can be both template and probe, flattering genuine acceptance, so
// one copy is kept. The dropped faces are listed in s.Dropped. It fails
// only for a set too large to hold all its distances.
func (s *Set) Dedupe(within float64) error {
	if within < 0 {
		return nil
	}
	dm, err := s.matrix()
	if err != nil {
		return err
	}
	n := len(s.Samples)
	limit := float32(within * within)
	conflict := make([]string, n)
	parent := make([]int, n)
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		if parent[i] != i {
			parent[i] = find(parent[i])
		}
		return parent[i]
	}
	for i := range s.Samples {
		a := &s.Samples[i]
		for j := i + 1; j < n; j++ {
			if dm.sqAt(i, j) > limit {
				continue
			}
			b := &s.Samples[j]
			if a.Label != b.Label {
				if conflict[i] == "" {
					conflict[i] = "same face as " + b.Source + " labelled " + b.Label
				}
				if conflict[j] == "" {
					conflict[j] = "same face as " + a.Source + " labelled " + a.Label
				}
				continue
			}
			// Keep the earliest copy: union under the smaller index.
			ri, rj := find(i), find(j)
			if ri != rj {
				parent[max(ri, rj)] = min(ri, rj)
			}
		}
	}
	var keep []int
	for i, x := range s.Samples {
		switch {
		case conflict[i] != "":
			s.Dropped = append(s.Dropped, Miss{Image: x.Source, Reason: conflict[i]})
		case find(i) != i:
			s.Dropped = append(s.Dropped, Miss{Image: x.Source, Reason: "repeats " + s.Samples[find(i)].Source})
		default:
			keep = append(keep, i)
		}
	}
	if len(keep) == n {
		return nil
	}
	// Carry the distances of the kept faces over instead of recomputing.
	kept := make([]Sample, len(keep))
	sub := &distMatrix{n: len(keep), sq: make([]float32, len(keep)*(len(keep)-1)/2)}
	for a, i := range keep {
		kept[a] = s.Samples[i]
		row := sub.sq[sub.offset(a):]
		for b := a + 1; b < len(keep); b++ {
			row[b-a-1] = dm.sqAt(i, keep[b])
		}
	}
	s.Samples, s.dm = kept, sub
	return nil
}

// descriptorFile is the layout of idols-descriptors.json: identities and
// base64 descriptors that point at them.
type descriptorFile struct {
	Idols []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"idols"`
	Faces []struct {
		Descriptor string `json:"descriptor"`
		IdolID     string `json:"idol_id"`
	} `json:"faces"`
}

// ReadDescriptors reads a descriptor file: faces whose descriptor is 128
// little-endian float32 (512 bytes, base64) labelled by idol_id. Identities
// listed without any face are ignored.
func ReadDescriptors(r io.Reader) (*Set, error) {
	var f descriptorFile
	if err := json.NewDecoder(r).Decode(&f); err != nil {
		return nil, fmt.Errorf("descriptor file: %w", err)
	}
	set := &Set{}
	for i, fc := range f.Faces {
		raw, err := base64.StdEncoding.DecodeString(fc.Descriptor)
		if err != nil {
			return nil, fmt.Errorf("descriptor file: face %d: %w", i, err)
		}
		if len(raw) != 4*face.Dim {
			return nil, fmt.Errorf("descriptor file: face %d: %d bytes, want %d", i, len(raw), 4*face.Dim)
		}
		if fc.IdolID == "" {
			return nil, fmt.Errorf("descriptor file: face %d has no idol_id", i)
		}
		s := Sample{Label: fc.IdolID, Source: fmt.Sprintf("face %d", i)}
		for k := range s.Embedding {
			v := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*k:]))
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("descriptor file: face %d: value %d is not finite", i, k)
			}
			s.Embedding[k] = v
		}
		set.Samples = append(set.Samples, s)
	}
	if len(set.Samples) == 0 {
		return nil, fmt.Errorf("descriptor file: no faces")
	}
	return set, nil
}
