package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/synth"
)

// TestEvalFeatureCache runs eval three times on one small data set: with an
// empty feature cache, with the filled one, and without; the scores (so the
// calibrations too) must be identical and the cache must hold one entry per
// (image, rotation).
func TestEvalFeatureCache(t *testing.T) {
	realBackbone(t)
	data := filepath.Join(t.TempDir(), "set")
	const nGood, perKind = 3, 1
	if err := synth.WriteDataset(data, calibration.MinImages, nGood, perKind, 96, 5); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(t.TempDir(), "cache")
	evalScores := func(out string, extra ...string) string {
		args := append([]string{"eval", "--data", data, "--train-limit", "0", "--method", "gaussian",
			"--transforms", "2", "--sweep-t", "1", "--out", out}, extra...)
		code, stdout, stderr := run(t, args...)
		if code != 0 {
			t.Fatalf("eval %v: exit %d\n%s\n%s", extra, code, stdout, stderr)
		}
		b, err := os.ReadFile(filepath.Join(out, "scores.csv"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	dir := t.TempDir()
	first := evalScores(filepath.Join(dir, "1"), "--feature-cache", cache)
	entries := 0
	filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".f32") {
			entries++
		}
		return nil
	})
	// Test images: T=2 within +-10 degrees is -10 and 10, T=1 is 0: three
	// rotations. Training images: their random views and the two test ones.
	test := (nGood + perKind*len(synth.Kinds)) * 3
	train := calibration.MinImages * (calibration.Defaults().TrainViews + 2)
	if want := test + train; entries != want {
		t.Errorf("cache holds %d entries, want %d", entries, want)
	}
	if again := evalScores(filepath.Join(dir, "2"), "--feature-cache", cache); again != first {
		t.Errorf("scores from the filled cache differ:\n%s\nvs\n%s", again, first)
	}
	if direct := evalScores(filepath.Join(dir, "3")); direct != first {
		t.Errorf("scores without the cache differ:\n%s\nvs\n%s", direct, first)
	}
}
