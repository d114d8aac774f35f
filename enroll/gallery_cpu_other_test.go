//go:build !linux

package enroll_test

import "time"

func threadCPU() (time.Duration, bool) { return 0, false }
