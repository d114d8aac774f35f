package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"testing"
)

// ImageForm is a multipart form with one JPEG part per image under field
// (the kiosk's liveness frames), and its content type.
func ImageForm(tb testing.TB, field string, images [][]byte) ([]byte, string) {
	tb.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i, img := range images {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename="f%d.jpg"`, field, i))
		h.Set("Content-Type", "image/jpeg")
		p, err := mw.CreatePart(h)
		if err != nil {
			tb.Fatal(err)
		}
		p.Write(img)
	}
	if err := mw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes(), mw.FormDataContentType()
}

// MustJSON is v marshalled, for a request body or a comparison.
func MustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}
