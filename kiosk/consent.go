package kiosk

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// The consent text is served by the API so that the kiosk shows exactly
// the text that is recorded: the customer's consent names its version and
// the SHA-256 of the text they read.

//go:embed consent/*.txt
var builtinConsent embed.FS

// BuiltinConsentVersion is the version of the texts shipped in consent/.
// Change it whenever their wording changes.
const BuiltinConsentVersion = "2026-12-v3"

// ConsentText is one language's consent text.
type ConsentText struct {
	Version  string `json:"version"`
	Language string `json:"language"`
	Text     string `json:"text"`
	SHA256   string `json:"sha256"`
}

// ConsentTexts are the texts of one version, by language ("zh", "en").
type ConsentTexts map[string]ConsentText

// Languages lists the languages in a stable order.
func (ct ConsentTexts) Languages() []string {
	out := make([]string, 0, len(ct))
	for l := range ct {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

// LoadConsentTexts reads <lang>.txt files from dir, all of one version.
// An empty dir gives the built-in texts (BuiltinConsentVersion), and then
// version must be empty or equal to it.
func LoadConsentTexts(dir, version string) (ConsentTexts, error) {
	var fsys fs.FS = builtinConsent
	root := "consent"
	if dir == "" {
		if version != "" && version != BuiltinConsentVersion {
			return nil, fmt.Errorf("consent version %q: the built-in texts are %s; set consent_dir for other texts", version, BuiltinConsentVersion)
		}
		version = BuiltinConsentVersion
	} else {
		if strings.TrimSpace(version) == "" {
			return nil, fmt.Errorf("consent dir %s: consent_version must name the version of its texts", dir)
		}
		fsys, root = os.DirFS(dir), "."
	}
	files, err := fs.Glob(fsys, filepath.ToSlash(filepath.Join(root, "*.txt")))
	if err != nil {
		return nil, fmt.Errorf("consent texts: %w", err)
	}
	out := ConsentTexts{}
	for _, f := range files {
		lang := strings.TrimSuffix(filepath.Base(f), ".txt")
		if !validLanguage(lang) {
			continue
		}
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("consent text %s: %w", f, err)
		}
		if !utf8.Valid(b) || len(strings.TrimSpace(string(b))) == 0 {
			return nil, fmt.Errorf("consent text %s: must be non-empty UTF-8", f)
		}
		sum := sha256.Sum256(b)
		out[lang] = ConsentText{Version: version, Language: lang, Text: string(b), SHA256: hex.EncodeToString(sum[:])}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("consent texts: no <lang>.txt file in %s", dir)
	}
	return out, nil
}

// validLanguage accepts short language tags: "zh", "en", "zh-Hant".
func validLanguage(l string) bool {
	if l == "" || len(l) > 16 {
		return false
	}
	for _, r := range l {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-') {
			return false
		}
	}
	return true
}
