package checkin

import (
	"time"

	"concierge"
)

// Config holds every rule of the arrival decision. The zero value is not
// usable; start from DefaultConfig, which is the one home of the check-in
// defaults: the daemon's configuration (the checkin section of the YAML file)
// starts from it too. The match rule (Threshold, Margin, FaceSlack) is the
// embedding engine's: the daemon, `concierge eval` and `concierge bench`
// replace it with match.* through one function in cmd/concierge
// (checkinConfig), so the value here serves only a Service built by hand.
type Config struct {
	// Branch is the branch id stamped on every arrival; the daemon sets it
	// from the top-level branch key.
	Branch string `yaml:"-"`

	// Threshold and Margin are the per-embedding rule (enroll.Rule): an
	// embedding names customer C when it is at most Threshold from C and at
	// least Margin closer to C than to the runner-up. The fused distance of
	// the whole track must also be at most Threshold. Defaults 0.40, 0.06,
	// a rule for dlib's 128-d embeddings; an engine's rule replaces them.
	Threshold float64 `yaml:"threshold"`
	Margin    float64 `yaml:"margin"`
	// FaceSlack lets one embedding of a track name C (vote, or conflict)
	// up to Threshold+FaceSlack, while the fused embedding must stay within
	// Threshold (enroll.Rule.FaceSlack). Default 0: every embedding under
	// Threshold.
	FaceSlack float64 `yaml:"face_slack"`
	// Votes is how many embeddings of one track must name the same customer
	// before it is an arrival. Default 1: the fused embedding of the track
	// must meet Threshold as well, which stops the single lucky frame of a
	// stranger that a vote count was once needed for (docs/checkin.md).
	Votes int `yaml:"votes"`

	// MaxEmbeddings caps the embeddings computed for one track, however long
	// the person stays in view. Default 5.
	MaxEmbeddings int `yaml:"max_embeddings"`
	// MinQuality is the least face.Quality.Score() worth embedding; the first
	// face of a track that reaches it is the "first usable face" latency is
	// measured from. Default 0.15 (about a sharp, frontal 60 px face).
	MinQuality float64 `yaml:"min_quality"`
	// MinFacePx: faces whose shorter side is smaller are ignored altogether,
	// neither tracked nor embedded. Default 60.
	MinFacePx int `yaml:"min_face_px"`
	// QualityGain: after the first embedding of a track, a face is embedded
	// again as soon as its quality beats the best embedded one by this
	// factor. Default 1.25.
	QualityGain float64 `yaml:"quality_gain"`
	// MinEmbedInterval: otherwise, a usable face is embedded again once this
	// much frame time has passed since the track's last embedding, so that
	// the votes come from different moments, not near-identical frames.
	// Default 130ms: two detections at the cameras' detect interval.
	MinEmbedInterval time.Duration `yaml:"min_embed_interval"`
	// ConfirmInterval replaces MinEmbedInterval for a track whose
	// embeddings already name a customer under the rule: one more
	// agreeing embedding may make it an arrival, so it is taken from the
	// next usable face this much frame time later, and the camera detects
	// on that frame even between its scheduled detections
	// (Service.Awaiting). Tracks naming nobody, strangers above all, keep
	// the slower MinEmbedInterval. Default 60ms: the next frame at 15 fps,
	// every other frame at 25 or 30.
	ConfirmInterval time.Duration `yaml:"confirm_interval"`

	// TrackTimeout ends a track that has not been seen for this long,
	// measured in frame timestamps. Default 1s.
	TrackTimeout time.Duration `yaml:"track_timeout"`
	// MinIoU is the least overlap between a track's predicted box and a
	// detection for the two to be linked. Default 0.3.
	MinIoU float64 `yaml:"min_iou"`
	// MaxCenterShift links a detection that does not overlap enough when its
	// centre is within this many box sizes of the prediction (fast motion,
	// dropped frames, a track's first link before it has a velocity) and
	// its size is within a factor of 2. Default 1.0.
	MaxCenterShift float64 `yaml:"max_center_shift"`

	// Cooldown is the least time between two arrivals of one customer at
	// the branch, counted from the last time the customer was recognised,
	// for customers whose service level sets none. Default 30m.
	Cooldown time.Duration `yaml:"cooldown"`
	// DeliverTimeout bounds each call to the Directory, VisitLog and
	// Notifier, so that a dead dependency delays a camera by at most this
	// much per arrival. Default 5s.
	DeliverTimeout time.Duration `yaml:"deliver_timeout"`
	// RetryQueue bounds the arrivals held in memory while the visit log or
	// the notifier fails (Service.RetryLoop); one more is dropped, counted
	// and logged. Default 1000: hours of a branch's arrivals.
	RetryQueue int `yaml:"retry_queue"`
	// RetryMin and RetryMax bound the pause between retries of a held
	// arrival; it doubles while they fail. Defaults 500ms and 30s.
	RetryMin time.Duration `yaml:"retry_min"`
	RetryMax time.Duration `yaml:"retry_max"`
}

// DefaultRetention is how long the visit log keeps an arrival.
const DefaultRetention = 90 * 24 * time.Hour

// DefaultConfig returns the shipped rules.
func DefaultConfig() Config {
	return Config{
		Threshold:        0.40,
		Margin:           0.06,
		Votes:            1,
		MaxEmbeddings:    5,
		MinQuality:       0.15,
		MinFacePx:        60,
		QualityGain:      1.25,
		MinEmbedInterval: 130 * time.Millisecond,
		ConfirmInterval:  60 * time.Millisecond,
		TrackTimeout:     time.Second,
		MinIoU:           0.3,
		MaxCenterShift:   1.0,
		Cooldown:         30 * time.Minute,
		DeliverTimeout:   5 * time.Second,
		RetryQueue:       1000,
		RetryMin:         500 * time.Millisecond,
		RetryMax:         30 * time.Second,
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return concierge.Errorf(concierge.EINVALID, "checkin config: "+format, args...)
	}
	switch {
	case c.Threshold <= 0 || c.Threshold > 2:
		return bad("threshold %v must be in (0, 2]", c.Threshold)
	case c.Margin < 0:
		return bad("margin %v must be >= 0", c.Margin)
	case c.FaceSlack < 0 || c.FaceSlack > 1:
		return bad("face_slack %v must be in [0, 1]", c.FaceSlack)
	case c.Votes < 1:
		return bad("votes %d must be >= 1", c.Votes)
	case c.MaxEmbeddings < c.Votes:
		return bad("max_embeddings %d must be >= votes %d", c.MaxEmbeddings, c.Votes)
	case c.MinQuality < 0 || c.MinQuality > 1:
		return bad("min_quality %v must be in [0, 1]", c.MinQuality)
	case c.MinFacePx < 0:
		return bad("min_face_px %d must be >= 0", c.MinFacePx)
	case c.QualityGain < 1:
		return bad("quality_gain %v must be >= 1", c.QualityGain)
	case c.MinEmbedInterval < 0:
		return bad("min_embed_interval %v must be >= 0", c.MinEmbedInterval)
	case c.ConfirmInterval < 0:
		return bad("confirm_interval %v must be >= 0", c.ConfirmInterval)
	case c.TrackTimeout <= 0:
		return bad("track_timeout %v must be > 0", c.TrackTimeout)
	case c.MinIoU <= 0 || c.MinIoU > 1:
		return bad("min_iou %v must be in (0, 1]", c.MinIoU)
	case c.MaxCenterShift < 0:
		return bad("max_center_shift %v must be >= 0", c.MaxCenterShift)
	case c.Cooldown < 0:
		return bad("cooldown %v must be >= 0", c.Cooldown)
	case c.DeliverTimeout <= 0:
		return bad("deliver_timeout %v must be > 0", c.DeliverTimeout)
	case c.RetryQueue < 1:
		return bad("retry_queue %d must be >= 1", c.RetryQueue)
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return bad("retry_min %v and retry_max %v must satisfy 0 < retry_min <= retry_max", c.RetryMin, c.RetryMax)
	}
	return nil
}
