package web

import (
	"sync"
	"time"
)

// limiter counts failed sign-ins per key (a client address, a staff name)
// in a fixed window: after max failures the key is locked out until the
// window that began with its first failure ends. Guessing a password
// through it takes max tries per lockout per address and per name.
type limiter struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	keys map[string]*failures
}

type failures struct {
	n     int
	until time.Time // end of the window
}

// maxLimiterKeys bounds the memory a flood of addresses can take; past it,
// keys whose window has ended are dropped.
const maxLimiterKeys = 10_000

func newLimiter(max int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{max: max, window: window, now: now, keys: map[string]*failures{}}
}

// blocked reports whether any of keys is locked out, and until when.
func (l *limiter) blocked(keys ...string) (bool, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var until time.Time
	for _, k := range keys {
		f := l.keys[k]
		if f == nil || !now.Before(f.until) {
			continue
		}
		if f.n >= l.max && f.until.After(until) {
			until = f.until
		}
	}
	return !until.IsZero(), until
}

// fail records a failed attempt for each of keys.
func (l *limiter) fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.keys) >= maxLimiterKeys {
		for k, f := range l.keys {
			if !now.Before(f.until) {
				delete(l.keys, k)
			}
		}
	}
	for _, k := range keys {
		f := l.keys[k]
		if f == nil || !now.Before(f.until) {
			if len(l.keys) >= maxLimiterKeys {
				continue // full of live lockouts: stop tracking new keys, keep the old
			}
			f = &failures{until: now.Add(l.window)}
			l.keys[k] = f
		}
		f.n++
	}
}

// reset forgets the failures of keys after a successful sign-in.
func (l *limiter) reset(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		delete(l.keys, k)
	}
}
