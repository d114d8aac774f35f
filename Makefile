# The two commands of the README: `make demo` and `make test`. Each runs
# deploy/setup.sh first, so either works on a fresh Debian 12 machine.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin

.PHONY: setup demo test vet bench clean release

setup:
	deploy/setup.sh

demo: setup
	bin/concierge demo

test:
	deploy/setup.sh --test
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	go vet ./...
	go test -race $$(go list ./... | grep -v -e /vision -e /cmd/)
	# Allocation counts, which -race's sync.Pool makes random.
	go test -count=1 -run 'Allocs$$' ./enroll/
	go test -count=1 -timeout 30m ./vision/... ./cmd/...
	go test -count=1 -tags matprofile -run TestNoMatLeak ./vision/
	# Fuzzing by count, not by time: Go 1.26's coordinator can report a
	# timed run's own deadline as a failure (golang/go#75804, fixed in 1.27).
	go test -run XXX -fuzz FuzzUploadPhoto -fuzztime 5000x -timeout 5m ./kiosk/
	go test -run XXX -fuzz FuzzJSONBodies -fuzztime 5000x -timeout 5m ./kiosk/

# Binaries for x86-64-v2 and armv8-a rather than for this machine's CPU; setup.sh
# --release installs the arm64 cross toolchain and sysroot (docs/operations.md).
release:
	deploy/setup.sh --release
	deploy/build.sh

bench: setup
	go test -run XXX -bench . -benchtime 20x ./vision/ ./enroll/

clean:
	rm -rf bin
