package vision

import (
	"net/url"
	"regexp"
	"strings"
)

// userinfo matches the credentials part of any URL in a text: the scheme,
// then everything up to the last '@' before the host. Passwords may hold
// ':' and, unescaped, even '/', so only whitespace, quotes and '@' end it.
var userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^\s@"'<>]*@`)

// MaskCredentials is the one place camera credentials are hidden: every
// text about a source (its URL in logs, OpenCV's and GStreamer's error
// messages, the health endpoint's error field) goes through it. It
// replaces the user information of every URL in text with "***", and, for
// each of sources that carries credentials, every literal occurrence of
// its password (as written and URL-decoded), because a library may quote
// it outside a URL.
func MaskCredentials(text string, sources ...string) string {
	for _, src := range sources {
		for _, secret := range secrets(src) {
			text = strings.ReplaceAll(text, secret, "***")
		}
	}
	return userinfo.ReplaceAllString(text, "${1}***@")
}

// secrets returns the password of a source URL as written and decoded,
// longest first so that a decoded password inside the raw one is not
// replaced half-way. Passwords shorter than 4 characters are left to the
// URL rule: replacing "a" everywhere would mangle every message.
func secrets(src string) []string {
	i := strings.Index(src, "://")
	if i < 0 {
		return nil
	}
	rest := src[i+3:]
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return nil
	}
	info := rest[:at]
	c := strings.Index(info, ":")
	if c < 0 {
		return nil
	}
	var out []string
	raw := info[c+1:]
	if len(raw) >= 4 {
		out = append(out, raw)
	}
	if dec, err := url.PathUnescape(raw); err == nil && dec != raw && len(dec) >= 4 {
		out = append(out, dec)
	}
	if len(out) == 2 && len(out[1]) > len(out[0]) {
		out[0], out[1] = out[1], out[0]
	}
	return out
}
