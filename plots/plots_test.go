package plots

import (
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/inspectd/inspectd/evalstats"
)

// decodeSize checks path is a PNG and returns its size.
func decodeSize(t *testing.T, path string) (int, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", path, err)
	}
	b := img.Bounds()
	return b.Dx(), b.Dy()
}

func scores(r *rand.Rand, n int, mu float64) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = math.Exp(mu + 0.4*r.NormFloat64())
	}
	return x
}

func rocCurve(t *testing.T, good, bad []float64) []evalstats.Point {
	t.Helper()
	s := append(append([]float64{}, good...), bad...)
	l := make([]bool, len(s))
	for i := len(good); i < len(s); i++ {
		l[i] = true
	}
	pts, err := evalstats.ROC(s, l)
	if err != nil {
		t.Fatal(err)
	}
	return pts
}

// keepOutput copies figures to $INSPECTD_PLOTS_OUT so a person can look.
func keepOutput(t *testing.T, path string) {
	if dir := os.Getenv("INSPECTD_PLOTS_OUT"); dir != "" {
		b, _ := os.ReadFile(path)
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(path)), b, 0o644); err != nil {
			t.Log(err)
		}
	}
}

func TestPNGSizes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	good, bad := scores(r, 60, 0), scores(r, 80, 0.6)
	curves := []Curve{
		{Name: "gaussian", Points: rocCurve(t, good, bad)},
		{Name: "flow", Points: rocCurve(t, good, scores(r, 80, 1.0))},
	}
	groups := []Group{{Name: "good", Scores: good}, {Name: "crack", Scores: bad}}
	dir := t.TempDir()
	tests := []struct {
		name string
		draw func(path string, opts ...Option) error
		opts []Option
		w, h int
	}{
		{"roc.png", func(p string, o ...Option) error { return ROCPNG(p, curves, "ROC", o...) }, nil, DefaultWidth, DefaultHeight},
		{"roc_small.png", func(p string, o ...Option) error { return ROCPNG(p, curves, "ROC", o...) }, []Option{WithSize(321, 203)}, 321, 203},
		{"hist.png", func(p string, o ...Option) error { return HistogramPNG(p, groups, 2.1, "scores", o...) }, nil, DefaultWidth, DefaultHeight},
		{"hist_nothreshold.png", func(p string, o ...Option) error {
			return HistogramPNG(p, groups, math.NaN(), "scores", o...)
		}, []Option{WithSize(640, 480), WithBins(12)}, 640, 480},
		{"hist_onevalue.png", func(p string, o ...Option) error {
			return HistogramPNG(p, []Group{{Name: "good", Scores: []float64{3, 3, 3}}}, math.NaN(), "", o...)
		}, nil, DefaultWidth, DefaultHeight},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := tc.draw(path, tc.opts...); err != nil {
				t.Fatal(err)
			}
			if w, h := decodeSize(t, path); w != tc.w || h != tc.h {
				t.Errorf("size %dx%d, want %dx%d", w, h, tc.w, tc.h)
			}
			keepOutput(t, path)
		})
	}
	// Atomic writes leave no temp files behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(tests) {
		t.Errorf("%d files in output dir, want %d", len(entries), len(tests))
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.png")
	ok := []evalstats.Point{{FPR: 0, TPR: 0}, {FPR: 1, TPR: 1}}
	good := Group{Name: "good", Scores: []float64{1, 2, 3}}
	tests := []struct {
		name string
		err  error
	}{
		{"ROC no curves", ROCPNG(path, nil, "t")},
		{"ROC one point", ROCPNG(path, []Curve{{Name: "a", Points: ok[:1]}}, "t")},
		{"ROC rate outside [0,1]", ROCPNG(path, []Curve{{Name: "a", Points: []evalstats.Point{{}, {FPR: 2, TPR: 1}}}}, "t")},
		{"ROC tiny size", ROCPNG(path, []Curve{{Name: "a", Points: ok}}, "t", WithSize(0, 10))},
		{"hist no groups", HistogramPNG(path, nil, 1, "t")},
		{"hist empty group", HistogramPNG(path, []Group{good, {Name: "crack"}}, 1, "t")},
		{"hist NaN score", HistogramPNG(path, []Group{{Name: "g", Scores: []float64{1, math.NaN()}}}, 1, "t")},
		{"hist infinite threshold", HistogramPNG(path, []Group{good}, math.Inf(1), "t")},
		{"hist negative bins", HistogramPNG(path, []Group{good}, 1, "t", WithBins(-1))},
		{"unwritable dir", HistogramPNG(filepath.Join(dir, "missing", "x.png"), []Group{good}, 1, "t")},
	}
	for _, tc := range tests {
		if tc.err == nil {
			t.Errorf("%s: want error", tc.name)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a failed call left %s behind (%v)", path, err)
	}
}
