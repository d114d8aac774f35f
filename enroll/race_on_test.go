//go:build race

package enroll_test

// raceEnabled: the race detector makes sync.Pool drop a quarter of what is
// put back, so a pooled search allocates now and then under -race.
const raceEnabled = true
