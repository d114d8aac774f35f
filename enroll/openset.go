package enroll

import "math"

// Tail is an engine's measured impostor tail: the chance that a stranger's
// face lies within distance t of one enrolled customer is
// p(t) = Φ(Alpha + Beta·t), a straight line on the normal-deviate scale
// fitted to the lower tail of impostor distances (`concierge eval` fits it,
// docs/accuracy.md). The zero Tail is "not measured".
type Tail struct {
	Alpha float64 `json:"alpha"`
	Beta  float64 `json:"beta"`
}

// Measured reports whether the tail holds a fit.
func (t Tail) Measured() bool { return t.Beta > 0 }

// P is p(th), the per-customer impostor rate at threshold th.
func (t Tail) P(th float64) float64 { return normCDF(t.Alpha + t.Beta*th) }

// Threshold is the largest distance at which a stranger's visit alerts with
// probability at most target in a gallery of n customers: the inverse of
// PerVisit(P(th), n).
func (t Tail) Threshold(target float64, n int) float64 {
	p := -math.Expm1(math.Log1p(-target) / float64(max(n, 1)))
	return (probit(p) - t.Alpha) / t.Beta
}

// PerVisit is the chance that a visit by someone who is none of n
// customers alerts, when each comparison independently accepts with
// probability p: 1−(1−p)^n, computed without losing small values.
func PerVisit(p float64, n int) float64 {
	if p >= 1 {
		return 1
	}
	return -math.Expm1(float64(n) * math.Log1p(-p))
}

func probit(p float64) float64  { return -math.Sqrt2 * math.Erfcinv(2*p) }
func normCDF(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }

// OpenSet is the threshold policy that keeps false alerts within the
// bank's budget as the gallery grows. A stranger is compared with every
// customer, so the same threshold alerts on strangers more often in a
// larger gallery; the threshold that holds Target false alerts per
// stranger visit therefore shrinks with the number of customers. It never
// exceeds Ceiling, the largest threshold measured safe per face on a small
// gallery, where the fitted tail would be extrapolated upwards.
type OpenSet struct {
	Tail Tail // the engine's impostor tail of single faces; zero: always Ceiling
	// Track, when measured, is the impostor tail of whole tracks under the
	// check-in rule in force. A track is decided again after every
	// embedding, so on one vote a stranger's track has several chances to
	// name a customer, and on tracks of varied frames that rate can exceed
	// a single face's. The threshold then holds the target for the larger
	// of the two.
	Track   Tail
	Target  float64 // false alerts per stranger visit, e.g. 1e-4
	Ceiling float64
	// DoorFactor, above 1, is how many times the customers' door templates
	// (learned from confirmed visits, DoorPolicy) multiply a stranger's
	// chance against the tails, which are measured on enrollments: each
	// door row is one more place to land near. `concierge eval visits`
	// measures it; the thresholds hold the target for the rate times it.
	DoorFactor float64
}

// perCustomer is the per-comparison rate that holds target in a gallery
// of n customers, divided by the door factor.
func (o OpenSet) perCustomer(target float64, n int) float64 {
	p := -math.Expm1(math.Log1p(-target) / float64(max(n, 1)))
	if o.DoorFactor > 1 {
		p /= o.DoorFactor
	}
	return p
}

// tailThreshold is t's threshold for target at n customers, door factor
// included.
func (o OpenSet) tailThreshold(t Tail, target float64, n int) float64 {
	return (probit(o.perCustomer(target, n)) - t.Alpha) / t.Beta
}

// Threshold is the distance threshold for a gallery of n customers.
func (o OpenSet) Threshold(n int) float64 {
	if !o.Tail.Measured() || o.Target <= 0 {
		return o.Ceiling
	}
	th := min(o.Ceiling, o.tailThreshold(o.Tail, o.Target, n))
	if o.Track.Measured() {
		// Both rates grow with the threshold: the larger stays within
		// the target up to the smaller of the two thresholds.
		th = min(th, o.tailThreshold(o.Track, o.Target, n))
	}
	return th
}

// Expected is the expected false alerts per stranger visit at threshold th
// in a gallery of n customers (the larger of the single-face and track
// rates, margin not credited: an upper estimate). Zero when the tail is
// not measured.
func (o OpenSet) Expected(th float64, n int) float64 {
	if !o.Tail.Measured() {
		return 0
	}
	p := o.Tail.P(th)
	if o.Track.Measured() {
		p = max(p, o.Track.P(th))
	}
	if o.DoorFactor > 1 {
		p = min(1, p*o.DoorFactor)
	}
	return PerVisit(p, n)
}

// Band is the outer edge of the "please verify" band for a gallery of n
// customers: the largest distance at which a stranger's visit produces a
// card with probability at most target, calibrated from the same tails as
// Threshold. A track whose fused embedding names one customer beyond
// Threshold(n) but within Band is not announced; staff are asked instead.
// Unlike Threshold it is not capped by Ceiling: a card costs a glance, not
// a greeting, so the band is allowed where an alert is not, and its
// budget is counted on the same measured tail. It is never below
// Threshold(n); it equals it (no band) when the tails are not measured
// (a fixed match.threshold) or target is not positive.
func (o OpenSet) Band(target float64, n int) float64 {
	th := o.Threshold(n)
	if !o.Tail.Measured() || target <= 0 {
		return th
	}
	b := o.tailThreshold(o.Tail, target, n)
	if o.Track.Measured() {
		b = min(b, o.tailThreshold(o.Track, target, n))
	}
	return max(th, b)
}
