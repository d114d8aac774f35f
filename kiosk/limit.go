package kiosk

import (
	"math"
	"sync"
	"time"
)

// limiter is a set of token buckets, one per key (a kiosk id, or a client
// address for failed sign-ins): each holds up to burst tokens and refills
// at rate tokens per second; a request takes one. Time comes from now, so
// tests step it instead of sleeping.
type limiter struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxBuckets bounds the memory a flood of distinct keys can take; beyond
// it, buckets that have refilled are forgotten (they would allow a full
// burst anyway), and if none has, the least recently used one.
const maxBuckets = 10000

func newLimiter(rate float64, burst int, now func() time.Time) *limiter {
	return &limiter{rate: rate, burst: float64(max(burst, 1)), now: now, buckets: map[string]*bucket{}}
}

// allow takes a token for key. When none is left it returns false and how
// long until one is.
func (l *limiter) allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	if dt := now.Sub(b.at).Seconds(); dt > 0 {
		b.tokens = math.Min(l.burst, b.tokens+dt*l.rate)
	}
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	if l.rate <= 0 {
		return false, time.Hour
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

func (l *limiter) prune(now time.Time) {
	oldest := ""
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		} else if oldest == "" || b.at.Before(l.buckets[oldest].at) {
			oldest = k
		}
	}
	if len(l.buckets) >= maxBuckets && oldest != "" {
		delete(l.buckets, oldest)
	}
}
