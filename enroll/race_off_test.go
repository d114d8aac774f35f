//go:build !race

package enroll_test

const raceEnabled = false
