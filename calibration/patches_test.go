package calibration_test

import (
	"context"
	"fmt"
	"image"
	"math"
	"slices"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/engine/tiny"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/local"
	"github.com/inspectd/inspectd/pipeline"
	"github.com/inspectd/inspectd/synth"
	"github.com/inspectd/inspectd/transform"
)

func TestPoolShare(t *testing.T) {
	for _, tc := range []struct {
		parts, perPart, dim int
		memory              int64
		want                float64
	}{
		{16, 3136, 1024, 2 << 30, 1},                     // the default at 16 parts: everything
		{644, 3136, 1024, 2 << 30, 0.1298},               // a whole ELPV train set: an eighth
		{10, 100, 10, 2 * 10 * 100 * 10 * 4, 1},          // exactly fits
		{10, 100, 10, 10 * 100 * 10 * 4, 0.5},            // half fits
		{1, 1 << 20, 1 << 10, 64 << 10, 1.0 / (1 << 15)}, // one huge part
	} {
		got := calibration.PoolShare(tc.parts, tc.perPart, tc.dim, tc.memory)
		if math.Abs(got-tc.want) > 1e-4 {
			t.Errorf("PoolShare(%d parts, %d patches, %d values, %d bytes) = %.5f, want %.5f", tc.parts, tc.perPart, tc.dim, tc.memory, got, tc.want)
		}
	}
}

// patchParts are n synthetic good parts and their names.
func patchParts(t *testing.T, n int) ([]gocv.Mat, []string) {
	t.Helper()
	var imgs []gocv.Mat
	var names []string
	for i := range n {
		imgs = append(imgs, synth.Good(int64(300+i), 96))
		names = append(names, fmt.Sprintf("good%02d", i))
	}
	t.Cleanup(func() { imageops.CloseAll(imgs) })
	return imgs, names
}

// tinyPatchConfig is the patchcore default on the tiny network's taps.
func tinyPatchConfig(t *testing.T) calibration.Config {
	t.Helper()
	cfg := calibration.DefaultsFor(local.MethodPatchCore)
	cfg.Features.Taps = []string{tiny.Tap1, tiny.Tap2}
	cfg.Features.Scales, cfg.Features.Stride = []int{64}, 4
	cfg.Local.Grid.Dims = []int{0, 0}
	cfg.Choose = nil
	return cfg
}

// Patches not kept in memory are extracted again, and are the same rows.
func TestGoodPatchesExtractedAgain(t *testing.T) {
	ex, _ := tinyExtractorAt(t, []int{64}, true)
	imgs, names := patchParts(t, 6)
	cfg := tinyPatchConfig(t)
	l := &pipeline.Local{Grid: cfg.Local.Grid}
	ctx := context.Background()
	all, want, err := calibration.GoodPatches(ctx, l, ex, imgs, names, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if all != len(imgs) {
		t.Fatalf("%d of %d parts kept with 1 GiB", all, len(imgs))
	}
	// Half the memory holds three parts' rows.
	part := int64(4 * len(want[0]))
	kept, got, err := calibration.GoodPatches(ctx, l, ex, imgs, names, 2*3*part)
	if err != nil {
		t.Fatal(err)
	}
	if kept != 3 {
		t.Errorf("%d parts kept in memory for three, want 3", kept)
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("part %d: rows extracted again differ from those kept", i)
		}
	}
	// A part of another size cannot share the grid.
	sq := synth.Good(999, 128)
	defer sq.Close()
	odd := sq.Region(image.Rect(0, 0, 128, 64))
	defer odd.Close()
	_, _, err = calibration.GoodPatches(ctx, l, ex, append(slices.Clone(imgs[:2]), odd), []string{"a", "b", "odd.png"}, 1<<30)
	if err == nil || !strings.Contains(err.Error(), "odd.png") || !strings.Contains(err.Error(), "one size") {
		t.Errorf("parts of two sizes: %v, want an error naming odd.png", err)
	}
}

// A patch memory too small for every part's patches samples them: the bank
// is chosen from about the share that fits, and calibration still scores
// every part out of sample.
func TestCalibratePatchMemoryBounded(t *testing.T) {
	ex, backbone := tinyExtractorAt(t, []int{64}, true)
	imgs, names := patchParts(t, 10)
	cfg := tinyPatchConfig(t)
	cfg.Features = ex.Config()
	ctx := context.Background()
	full, err := calibration.Calibrate(ctx, ex, backbone, imgs, names, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Patch methods' thresholds come from a normal tail by default (the
	// order statistic with many parts), recorded as that rule.
	if m := full.Manifest.Threshold.Method; m != "loo-gaussian+empirical" {
		t.Errorf("threshold method %q, want loo-gaussian+empirical", m)
	}
	rows := full.Manifest.Training.Vectors
	var dim int
	for _, tn := range full.Tensors {
		if tn.Name == "patchcore.bank" {
			dim = tn.Shape[1]
		}
	}
	if dim == 0 || rows == 0 {
		t.Fatalf("full calibration: %d rows of %d values", rows, dim)
	}
	for _, share := range []float64{0.5, 0.2} {
		t.Run(fmt.Sprint(share), func(t *testing.T) {
			c := cfg
			c.PatchMemory = int64(2 * share * float64(rows*dim*4))
			res, err := calibration.Calibrate(ctx, ex, backbone, imgs, names, c, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := float64(res.Manifest.Training.Vectors) / float64(rows)
			if got < 0.8*share || got > 1.2*share {
				t.Errorf("%d of %d rows sampled (%.3f), want about %.2f", res.Manifest.Training.Vectors, rows, got, share)
			}
			g := res.Manifest.Training.GoodScores
			if len(g) != len(imgs) {
				t.Fatalf("%d leave-one-out scores for %d parts", len(g), len(imgs))
			}
			for i, v := range g {
				if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
					t.Errorf("leave-one-out score %d is %v", i, v)
				}
			}
			if th := res.Manifest.Threshold.Value; !(th > 0) || math.IsInf(th, 0) {
				t.Errorf("threshold %v", th)
			}
		})
	}
	c := cfg
	c.PatchMemory = 1000
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "patch memory") {
		t.Errorf("patch memory of 1000 bytes: %v, want an error", err)
	}
}

// The manifest says how many views of each part were trained on, and views
// add rows to what the bank is chosen from; one view is the parts as they
// are, whatever the transformations.
func TestCalibrateRecordsViews(t *testing.T) {
	ex, backbone := tinyExtractorAt(t, []int{64}, true)
	imgs, names := patchParts(t, 10)
	calibrate := func(tr transform.Config, views int) *calibration.Result {
		t.Helper()
		cfg := tinyPatchConfig(t)
		cfg.Features = ex.Config()
		cfg.Transforms, cfg.TrainViews = tr, views
		res, err := calibration.Calibrate(context.Background(), ex, backbone, imgs, names, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Manifest.Training.Views; got != views {
			t.Errorf("%d views a part recorded, want %d", got, views)
		}
		return res
	}
	lighting := transform.Config{Mode: transform.None, Brightness: 0.2, Contrast: 0.2, Saturation: 0.2}
	plain := calibrate(transform.Config{Mode: transform.None}, 1)
	one := calibrate(lighting, 1)
	four := calibrate(lighting, 4)
	if g, w := one.Manifest.Training.GoodScores, plain.Manifest.Training.GoodScores; !slices.Equal(g, w) {
		t.Errorf("leave-one-out scores with one jittered view %v, without views %v", g, w)
	}
	if four.Manifest.Training.Vectors <= plain.Manifest.Training.Vectors {
		t.Errorf("%d rows with four views a part, %d without", four.Manifest.Training.Vectors, plain.Manifest.Training.Vectors)
	}
}
