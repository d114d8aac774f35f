package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"concierge/enroll"
	"concierge/face"
	"concierge/sqlite"
)

// BenchmarkTemplates10k is the gallery's load at start and at every reload
// (an enrollment or a withdrawal by another process): 10,000 customers of
// 3 templates each, every template opened (AES-256-GCM) on the way.
func BenchmarkTemplates10k(b *testing.B) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "c.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	var e face.Embedding
	for i := 0; i < 10_000; i++ {
		e[i%face.Dim] = float32(i)
		ts := []enroll.Template{{Embedding: e, Model: "m", Created: now}, {Embedding: e, Model: "m", Created: now}, {Embedding: e, Model: "m", Created: now}}
		if _, err := db.SaveEnrollment(ctx, enroll.Customer{ID: fmt.Sprintf("C%05d", i), DisplayName: "x", Created: now},
			enroll.Consent{Reference: "F", TextVersion: "v1", Channel: "cli", GrantedAt: now}, ts); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		ts, err := db.Templates(ctx, "m")
		if err != nil || len(ts) != 30_000 {
			b.Fatalf("%d templates, %v", len(ts), err)
		}
	}
}
