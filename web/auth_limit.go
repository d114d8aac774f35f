package web

import (
	"strings"
	"sync"
	"time"
)

// limiter counts failed sign-ins in a fixed window and decides who must
// wait. Keys are "addr:<ip>" and "name:<staff name>", as the lobby and
// StaffDirectory.Verify pass them. From them it keeps three counters:
//
//   - per address: max failures lock that address out (any name) until the
//     window that began with its first failure ends;
//   - per (name, address): the same, for one name from one address;
//   - per name, over every address: at most a slowdown (one attempt per
//     nameSlowdown once max failures are counted), never a lockout. A
//     lockout per name alone would let anyone on the network lock a named
//     member of staff out by typing wrong passwords under their name.
//
// Guessing a password through it takes max tries per window per address,
// and no more than one try per nameSlowdown per name from all addresses
// together.
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
	last  time.Time // last failure, for the per-name slowdown
}

// maxLimiterKeys bounds the memory a flood of addresses can take: past it,
// expired keys go first, then the oldest. Each failure adds at most three
// keys, so the table never holds more than maxLimiterKeys+2.
const maxLimiterKeys = 10_000

// nameSlowdown spaces attempts for a name under attack from many
// addresses: a member of staff typing their password elsewhere waits at
// most this long.
const nameSlowdown = 2 * time.Second

func newLimiter(max int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{max: max, window: window, now: now, keys: map[string]*failures{}}
}

// counters turns the caller's keys into the limiter's: the address, the
// pair, and the name (slowdown only).
func counters(keys []string) (locks []string, name string) {
	var addr string
	for _, k := range keys {
		switch {
		case strings.HasPrefix(k, "addr:"):
			addr = k
		case strings.HasPrefix(k, "name:"):
			name = k
		default:
			locks = append(locks, k)
		}
	}
	if addr != "" {
		locks = append(locks, addr)
	}
	if addr != "" && name != "" {
		locks = append(locks, "pair:"+addr+"\x00"+name)
	}
	if addr == "" && name != "" {
		// Without an address the name is all there is to lock.
		locks = append(locks, name)
		name = ""
	}
	return locks, name
}

// blocked reports whether an attempt with these keys must wait, and until
// when.
func (l *limiter) blocked(keys ...string) (bool, time.Time) {
	locks, name := counters(keys)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var until time.Time
	for _, k := range locks {
		f := l.keys[k]
		if f == nil || !now.Before(f.until) {
			continue
		}
		if f.n >= l.max && f.until.After(until) {
			until = f.until
		}
	}
	if f := l.keys[name]; name != "" && f != nil && now.Before(f.until) && f.n >= l.max {
		if next := f.last.Add(nameSlowdown); now.Before(next) && next.After(until) {
			until = next
		}
	}
	return !until.IsZero(), until
}

// fail records a failed attempt.
func (l *limiter) fail(keys ...string) {
	locks, name := counters(keys)
	if name != "" {
		locks = append(locks, name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range locks {
		f := l.keys[k]
		if f == nil || !now.Before(f.until) {
			if f == nil && len(l.keys) >= maxLimiterKeys {
				l.evict(now)
			}
			f = &failures{until: now.Add(l.window)}
			l.keys[k] = f
		}
		f.n++
		f.last = now
	}
}

// evict makes room: every expired key, or else the one whose window ends
// first. A new address is always tracked: a table full of one attacker's
// addresses must not exempt the next one from the limit.
func (l *limiter) evict(now time.Time) {
	var oldest string
	var oldestUntil time.Time
	for k, f := range l.keys {
		if !now.Before(f.until) {
			delete(l.keys, k)
			continue
		}
		if oldest == "" || f.until.Before(oldestUntil) {
			oldest, oldestUntil = k, f.until
		}
	}
	if len(l.keys) >= maxLimiterKeys && oldest != "" {
		delete(l.keys, oldest)
	}
}

// reset forgets the failures after a successful sign-in: those of the
// name, and of the name from this address. The address's own count stays:
// one good password must not wipe the record of guesses at others.
func (l *limiter) reset(keys ...string) {
	locks, name := counters(keys)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range locks {
		if strings.HasPrefix(k, "pair:") || strings.HasPrefix(k, "name:") {
			delete(l.keys, k)
		}
	}
	if name != "" {
		delete(l.keys, name)
	}
}

// size is the number of keys tracked.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}
