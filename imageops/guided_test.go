package imageops

import (
	"math"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

// lineImage is an s x s 8-bit image of value bg with a dark vertical line
// of the given width at column x0 (value ink).
func lineImage(s, x0, width int, bg, ink uint8, typ gocv.MatType) gocv.Mat {
	m := gocv.NewMatWithSize(s, s, typ)
	b, _ := m.DataPtrUint8()
	ch := m.Channels()
	for y := range s {
		for x := range s {
			v := bg
			if x >= x0 && x < x0+width {
				v = ink
			}
			for c := range ch {
				b[(y*s+x)*ch+c] = v
			}
		}
	}
	return m
}

func TestGuidedFilter(t *testing.T) {
	const s = 48
	flat := make([]float32, s*s)
	noise := make([]float32, s*s)
	for i := range noise {
		noise[i] = float32(math.Sin(float64(i)*12.9898)*0.5 + 0.5)
	}
	step := make([]float32, s*s)
	for i := range step {
		if i%s >= s/2 {
			step[i] = 1
		}
	}
	constant := func(v float32) []float32 {
		m := make([]float32, s*s)
		for i := range m {
			m[i] = v
		}
		return m
	}
	tests := []struct {
		name        string
		guide, src  []float32
		r           int
		eps         float64
		want        []float32 // nil: check only size
		tol         float64
		smoothsStep bool // the step must be blurred (flat guide) rather than kept
	}{
		{"radius 0 copies", noise, step, 0, 1e-4, step, 0, false},
		{"a constant stays constant under any guide", noise, constant(2.5), 3, 1e-4, constant(2.5), 1e-4, false},
		{"the guide itself comes back through a small eps", step, step, 3, 1e-6, step, 1e-3, false},
		{"a flat guide only smooths", flat, step, 3, 1e-4, nil, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := GuidedFilter(tc.guide, tc.src, s, s, tc.r, tc.eps)
			if len(out) != s*s {
				t.Fatalf("%d values, want %d", len(out), s*s)
			}
			for i, v := range tc.want {
				if math.Abs(float64(out[i]-v)) > tc.tol {
					t.Fatalf("value %d: %v, want %v within %v", i, out[i], v, tc.tol)
				}
			}
			if tc.smoothsStep {
				mid := out[s*s/2+s/2-1]
				if mid <= 0.05 || mid >= 0.95 {
					t.Errorf("value left of the step %v: a flat guide must blur the step", mid)
				}
			}
		})
	}
}

// TestGuidedFilterPutsPeakOnLine is why the heat map is filtered: a coarse
// bump of heat centred three pixels beside a thin dark line peaks on the
// line after filtering along an image of it.
func TestGuidedFilterPutsPeakOnLine(t *testing.T) {
	const s, x0 = 64, 30
	for _, tc := range []struct {
		name    string
		bg, ink uint8
		typ     gocv.MatType
	}{
		{"bright part, colour", 200, 60, gocv.MatTypeCV8UC3},
		{"dim part, grey", 40, 25, gocv.MatTypeCV8UC1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := lineImage(s, x0, 2, tc.bg, tc.ink, tc.typ)
			defer img.Close()
			g, err := Guide(img, s)
			if err != nil {
				t.Fatal(err)
			}
			heat := gaussMap(s, s, x0+3.5, 32, 5)
			if x, _ := argmax(heat, s); x == x0 || x == x0+1 {
				t.Fatalf("set-up: the bump already peaks on the line (column %d)", x)
			}
			out := GuidedFilter(g, heat, s, s, 4, 1e-4)
			if x, _ := argmax(out, s); x != x0 && x != x0+1 {
				t.Errorf("peak at column %d, want on the line at %d-%d", x, x0, x0+1)
			}
		})
	}
}

func TestGuide(t *testing.T) {
	bright := lineImage(32, 10, 4, 220, 20, gocv.MatTypeCV8UC3)
	defer bright.Close()
	dim := lineImage(32, 10, 4, 30, 10, gocv.MatTypeCV8UC3)
	defer dim.Close()
	gb, err := Guide(bright, 32)
	if err != nil {
		t.Fatal(err)
	}
	gd, err := Guide(dim, 32)
	if err != nil {
		t.Fatal(err)
	}
	for i := range gb {
		if gb[i] < 0 || gb[i] > 1 {
			t.Fatalf("value %d: %v outside 0..1", i, gb[i])
		}
		if math.Abs(float64(gb[i]-gd[i])) > 1e-6 {
			t.Fatalf("value %d: bright %v, dim %v: the stretch must make them equal", i, gb[i], gd[i])
		}
	}
	if gb[10] != 0 || gb[0] != 1 {
		t.Errorf("line %v, background %v; want 0 and 1", gb[10], gb[0])
	}

	bad := gocv.NewMatWithSize(8, 8, gocv.MatTypeCV32F)
	defer bad.Close()
	empty := gocv.NewMat()
	defer empty.Close()
	for _, tc := range []struct {
		name string
		m    gocv.Mat
		size int
		want string
	}{
		{"float image", bad, 8, "8-bit"},
		{"empty image", empty, 8, "8-bit"},
		{"size 0", bright, 0, "size"},
	} {
		if _, err := Guide(tc.m, tc.size); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", tc.name, err, tc.want)
		}
	}
}

// BenchmarkHeatGuide is the heat guide's cost per inspection: the part's
// guide at 224 x 224 from a 300 x 300 colour image, then the filter.
func BenchmarkHeatGuide(b *testing.B) {
	img := randomMat(b, 300, 300, gocv.MatTypeCV8UC3, 1)
	defer img.Close()
	heat := gaussMap(224, 224, 100, 120, 12)
	for b.Loop() {
		g, err := Guide(img, 224)
		if err != nil {
			b.Fatal(err)
		}
		GuidedFilter(g, heat, 224, 224, 4, 1e-4)
	}
}
