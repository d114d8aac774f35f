package models

import (
	"errors"
	"io/fs"

	"concierge"
)

// FetchErrorCode is the application error code of a failed Fetch. A wrong
// file (its hash or size) is the operator's to look at: EINVALID. A file
// no source could supply means a source (the network, npm, the mirror,
// the --from directory) is missing: ENOTFOUND. Anything else is a source
// that did not answer: EUNAVAILABLE.
func FetchErrorCode(err error) string {
	var he *HashError
	var se *SizeError
	switch {
	case errors.As(err, &he) || errors.As(err, &se):
		return concierge.EINVALID
	case errors.Is(err, ErrNoDownload):
		return concierge.ENOTFOUND
	}
	return concierge.EUNAVAILABLE
}

// VerifyErrorCode is the application error code of the failures of
// VerifyFile over a set: ENOTFOUND when the files are only missing (a
// fetch installs them), EINVALID when one is there but wrong.
func VerifyErrorCode(errs []error) string {
	for _, err := range errs {
		if !errors.Is(err, fs.ErrNotExist) {
			return concierge.EINVALID
		}
	}
	return concierge.ENOTFOUND
}
