package calibration_test

import (
	"context"
	"fmt"
	"testing"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/synth"
)

// partsOf are synthetic good parts of the given sizes (w x h), named by size.
func partsOf(t *testing.T, sizes [][2]int) ([]gocv.Mat, []string) {
	t.Helper()
	var imgs []gocv.Mat
	var names []string
	for i, s := range sizes {
		sq := synth.Good(int64(400+i), max(s[0], s[1]))
		imgs = append(imgs, imageops.Resize(sq, s[0], s[1]))
		sq.Close()
		names = append(names, fmt.Sprintf("%dx%d-%d.png", s[0], s[1], i))
	}
	t.Cleanup(func() { imageops.CloseAll(imgs) })
	return imgs, names
}

// TestOneSize: good parts whose aspect-true inputs differ are resized to
// the median-shape part's size (a part far from it named in a warning);
// parts of one input size, or squashed input, are passed as they are.
func TestOneSize(t *testing.T) {
	aspect := features.Config{Aspect: true, Stride: 16}
	for _, tc := range []struct {
		name    string
		fc      features.Config
		sizes   [][2]int
		resized int    // parts copied at the reference's size
		odd     string // the part warned about
	}{
		{"one size", aspect, [][2]int{{96, 96}, {96, 96}, {96, 96}}, 0, ""},
		{"one input size from different pixel sizes", aspect, [][2]int{{96, 96}, {100, 100}, {96, 98}}, 0, ""},
		{"odd crops", aspect, [][2]int{{96, 96}, {110, 96}, {96, 112}, {100, 96}, {96, 96}}, 2, ""},
		{"squashed input takes any shape", features.Config{}, [][2]int{{96, 96}, {192, 96}}, 0, ""},
		{"another shape", aspect, [][2]int{{96, 96}, {96, 96}, {192, 96}}, 1, "192x96-2.png"},
		{"shapes that vary (tiles)", aspect, [][2]int{{96, 128}, {96, 96}, {128, 96}, {112, 96}, {96, 160}}, 4, "96x160-4.png"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			imgs, names := partsOf(t, tc.sizes)
			out, release, odd := calibration.OneSize(imgs, names, tc.fc, 64)
			defer release()
			if odd != tc.odd {
				t.Errorf("warned about %q, want %q", odd, tc.odd)
			}
			if len(out) != len(imgs) {
				t.Fatalf("%d parts out of %d", len(out), len(imgs))
			}
			w0, h0 := tc.fc.InputSize(out[0].Cols(), out[0].Rows(), 64)
			copies := 0
			for i, m := range out {
				if w, h := tc.fc.InputSize(m.Cols(), m.Rows(), 64); w != w0 || h != h0 {
					t.Errorf("part %d: input %dx%d, part 0's %dx%d", i, w, h, w0, h0)
				}
				if m.Ptr() != imgs[i].Ptr() {
					copies++
				}
			}
			if copies != tc.resized {
				t.Errorf("%d parts resized, want %d", copies, tc.resized)
			}
		})
	}
}

// TestCalibrateOddCrops: a patch method calibrates on good parts cropped to
// different sizes.
func TestCalibrateOddCrops(t *testing.T) {
	ex, backbone := tinyExtractorAt(t, []int{64}, true)
	imgs, names := partsOf(t, [][2]int{{96, 96}, {104, 96}, {96, 108}, {96, 96}, {100, 96}, {96, 96}, {112, 100}, {192, 96}})
	cfg := tinyPatchConfig(t)
	cfg.Features = ex.Config()
	res, err := calibration.Calibrate(context.Background(), ex, backbone, imgs, names, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Manifest.Training.GoodScores); n != len(imgs) {
		t.Errorf("%d leave-one-out scores for %d parts", n, len(imgs))
	}
	if th := res.Manifest.Threshold.Value; !(th > 0) {
		t.Errorf("threshold %v", th)
	}
	// The shapes the parts came in are recorded, not the one size they
	// were brought to: parts on the line are checked against them.
	want := model.PartShape{AspectMin: 96.0 / 108, AspectMedian: 100.0 / 96, AspectMax: 2}
	if got := res.Manifest.Training.Shape; got == nil || *got != want {
		t.Errorf("recorded part shape %+v, want %+v", got, want)
	}
}
