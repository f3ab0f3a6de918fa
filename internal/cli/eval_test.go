package cli

import (
	"fmt"
	"io/fs"
	"math"
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

// TestEvalFRRSubsets checks the FRR check's bookkeeping on a small set: one
// image AUROC per calibration and one entry per calibration for every
// target, rates that are shares, means that are the means of the draws, and
// a hindsight threshold at each draw's measured rate that catches at least
// as much as the draw's own threshold (it sits at or below it by
// construction).
func TestEvalFRRSubsets(t *testing.T) {
	realBackbone(t)
	data := filepath.Join(t.TempDir(), "set")
	const subsets, nTrain = 2, calibration.MinImages
	if err := synth.WriteDataset(data, nTrain+4, 4, 1, 96, 7); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := run(t, "eval", "--data", data, "--train-limit", fmt.Sprint(nTrain), "--method", "patchcore",
		"--frr-subsets", fmt.Sprint(subsets), "--out", out)
	if code != 0 {
		t.Fatalf("eval: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "caught mean") {
		t.Errorf("eval's summary does not report the catch rate over the draws:\n%s", stdout)
	}
	c := readSummary(t, out).FRRCheck
	if c == nil || c.Subsets != subsets || c.Good != 4 || len(c.Points) == 0 {
		t.Fatalf("frr_check = %+v, want %d subsets over 4 good test parts", c, subsets)
	}
	// The synthetic defects are plain to see: a draw that ranks them no
	// better than chance has lost its scores or its labels.
	if len(c.AUROC) != subsets || !strings.Contains(stdout, "image AUROC over") {
		t.Errorf("image AUROC per draw: %v, want %d (and reported)", c.AUROC, subsets)
	}
	for i, a := range c.AUROC {
		if !(a > 0.5 && a <= 1) {
			t.Errorf("draw %d: image AUROC %g, want above chance", i, a)
		}
	}
	for _, p := range c.Points {
		if len(p.Measured) != subsets || len(p.Caught) != subsets {
			t.Fatalf("target %g: %d measured and %d caught rates, want %d each", p.TargetFRR, len(p.Measured), len(p.Caught), subsets)
		}
		for i := range p.Caught {
			if p.Caught[i] < 0 || p.Caught[i] > 1 || p.Measured[i] < 0 || p.Measured[i] > 1 {
				t.Errorf("target %g, draw %d: measured %g, caught %g: not shares", p.TargetFRR, i, p.Measured[i], p.Caught[i])
			}
		}
		if m := (p.Caught[0] + p.Caught[1]) / 2; math.Abs(m-p.CaughtMean) > 1e-12 {
			t.Errorf("target %g: caught mean %g, the draws' mean is %g", p.TargetFRR, p.CaughtMean, m)
		}
		if p.OracleCaughtMean < p.CaughtMean-1e-12 {
			t.Errorf("target %g: hindsight threshold caught %g, less than the draws' own %g", p.TargetFRR, p.OracleCaughtMean, p.CaughtMean)
		}
	}
}
