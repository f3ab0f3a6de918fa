package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/synth"
)

func TestSynthOnReal(t *testing.T) {
	good := t.TempDir()
	for i := range 8 {
		m := synth.Good(int64(i), 64)
		b, err := imageops.EncodePNG(m)
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(good, fmt.Sprintf("%02d.png", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "small")
	code, stdout, stderr := run(t, "synth", "--on-real", good, "--out", out, "--train", "2", "--test-good", "2", "--per-kind", "1")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, f := range []string{"train/good/001.png", "test/good/001.png", "test/dent/000.png", "ground_truth/crack/000_mask.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}

	// The defaults need 16 + 40 + 4 x 20 good images.
	code, _, stderr = run(t, "synth", "--on-real", good, "--out", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "8 good images given, 136 needed") {
		t.Errorf("too few images: exit %d, stderr:\n%s", code, stderr)
	}
	code, _, _ = run(t, "synth", "--out", t.TempDir(), filepath.Join(good, "00.png"))
	if code != 2 {
		t.Errorf("files without --on-real: exit %d, want 2", code)
	}
}
