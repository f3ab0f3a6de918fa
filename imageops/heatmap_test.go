package imageops

import (
	"math"
	"testing"

	"gocv.io/x/gocv"
)

func gaussMap(h, w int, cx, cy, sigma float64) []float32 {
	m := make([]float32, h*w)
	for y := range h {
		for x := range w {
			d2 := (float64(x)-cx)*(float64(x)-cx) + (float64(y)-cy)*(float64(y)-cy)
			m[y*w+x] = float32(math.Exp(-d2 / (2 * sigma * sigma)))
		}
	}
	return m
}

func sum(m []float32) float64 {
	var s float64
	for _, v := range m {
		s += float64(v)
	}
	return s
}

func argmax(m []float32, w int) (x, y int) {
	best := 0
	for i, v := range m {
		if v > m[best] {
			best = i
		}
	}
	return best % w, best / w
}

func TestResizeMap(t *testing.T) {
	tests := []struct {
		name       string
		h, w, H, W int
	}{
		{"up 4x", 14, 14, 56, 56},
		{"up non-square", 10, 16, 30, 64},
		{"down 2x", 40, 40, 20, 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Peak at the centre of source pixel (px, py).
			px, py := tc.w*3/4, tc.h/3
			src := gaussMap(tc.h, tc.w, float64(px), float64(py), 2)
			dst := ResizeMap(src, tc.h, tc.w, tc.H, tc.W)
			if len(dst) != tc.H*tc.W {
				t.Fatalf("len %d, want %d", len(dst), tc.H*tc.W)
			}
			// Mass scales with the area; the mean is kept.
			m0 := sum(src) / float64(len(src))
			m1 := sum(dst) / float64(len(dst))
			if math.Abs(m1-m0) > 0.03*m0 {
				t.Errorf("mean %.4f, source mean %.4f", m1, m0)
			}
			// The peak lands where the source pixel centre maps (half-pixel aligned).
			sx, sy := float64(tc.W)/float64(tc.w), float64(tc.H)/float64(tc.h)
			wantX, wantY := (float64(px)+0.5)*sx-0.5, (float64(py)+0.5)*sy-0.5
			x, y := argmax(dst, tc.W)
			if math.Abs(float64(x)-wantX) > math.Max(1, sx/2) || math.Abs(float64(y)-wantY) > math.Max(1, sy/2) {
				t.Errorf("peak at (%d,%d), want near (%.1f,%.1f)", x, y, wantX, wantY)
			}
		})
	}
}

func TestRotateMap(t *testing.T) {
	const h, w = 41, 61
	cx, cy := float64(w-1)/2, float64(h-1)/2
	// Peak 10 px right of the centre: +90 (counter-clockwise as displayed,
	// y down) takes it 10 px above the centre.
	src := gaussMap(h, w, cx+10, cy, 2)
	tests := []struct {
		deg          float64
		wantX, wantY int
	}{
		{90, int(cx), int(cy) - 10},
		{-90, int(cx), int(cy) + 10},
		{180, int(cx) - 10, int(cy)},
		{45, int(math.Round(cx + 10/math.Sqrt2)), int(math.Round(cy - 10/math.Sqrt2))},
	}
	for _, tc := range tests {
		got := RotateMap(src, h, w, tc.deg)
		x, y := argmax(got, w)
		if x != tc.wantX || y != tc.wantY {
			t.Errorf("RotateMap(%v): peak at (%d,%d), want (%d,%d)", tc.deg, x, y, tc.wantX, tc.wantY)
		}
		if s0, s1 := sum(src), sum(got); math.Abs(s1-s0) > 0.02*s0 {
			t.Errorf("RotateMap(%v): mass %.3f, want %.3f", tc.deg, s1, s0)
		}
		back := RotateMap(got, h, w, -tc.deg)
		if x, y := argmax(back, w); x != int(cx)+10 || y != int(cy) {
			t.Errorf("RotateMap(%v) then back: peak at (%d,%d)", tc.deg, x, y)
		}
	}
	// Uncovered corners are zero (no evidence), unlike Rotate's reflection.
	ones := make([]float32, h*w)
	for i := range ones {
		ones[i] = 1
	}
	r := RotateMap(ones, h, w, 45)
	if r[0] != 0 || r[len(r)-1] != 0 {
		t.Errorf("corners after 45 degrees = %v, %v; want 0", r[0], r[len(r)-1])
	}
	if c := r[int(cy)*w+int(cx)]; c != 1 {
		t.Errorf("centre after 45 degrees = %v, want 1", c)
	}
}

func TestGaussianBlur(t *testing.T) {
	const h, w = 50, 60
	for _, sigma := range []float64{1, 3, 5} {
		src := make([]float32, h*w)
		src[25*w+30] = 100
		got := GaussianBlur(src, h, w, sigma)
		if s := sum(got); math.Abs(s-100) > 0.01 {
			t.Errorf("sigma %v: mass %.4f, want 100", sigma, s)
		}
		if x, y := argmax(got, w); x != 30 || y != 25 {
			t.Errorf("sigma %v: peak moved to (%d,%d)", sigma, x, y)
		}
		// Profile of a 2-D Gaussian: value at distance sigma is exp(-1/2) of the peak.
		d := int(sigma)
		ratio := float64(got[25*w+30+d] / got[25*w+30])
		if want := math.Exp(-0.5); math.Abs(ratio-want) > 0.03 {
			t.Errorf("sigma %v: ratio at 1 sigma %.3f, want %.3f", sigma, ratio, want)
		}
	}
	src := gaussMap(h, w, 10, 10, 3)
	if got := GaussianBlur(src, h, w, 0); sum(got) != sum(src) {
		t.Error("sigma 0 changed the map")
	}
}

func TestMapPanicsOnBadLength(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("ResizeMap with a wrong length did not panic")
		}
	}()
	ResizeMap(make([]float32, 10), 3, 4, 6, 8)
}

func TestOverlay(t *testing.T) {
	img := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(128, 128, 128, 0), 60, 80, gocv.MatTypeCV8UC3)
	defer img.Close()
	gray := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(128, 0, 0, 0), 60, 80, gocv.MatTypeCV8UC1)
	defer gray.Close()
	// 6x8 map: left half cold, right half far above hi.
	const h, w = 6, 8
	heat := make([]float32, h*w)
	for y := range h {
		for x := w / 2; x < w; x++ {
			heat[y*w+x] = 50
		}
	}
	for _, base := range []gocv.Mat{img, gray} {
		out := Overlay(base, heat, h, w, 0, 10)
		if out.Rows() != 60 || out.Cols() != 80 || out.Type() != gocv.MatTypeCV8UC3 {
			t.Fatalf("overlay %dx%d type %v, want 80x60 8UC3", out.Cols(), out.Rows(), out.Type())
		}
		cold := out.GetVecbAt(30, 5)
		hot := out.GetVecbAt(30, 75)
		// JET: cold is blue, hot is red (BGR order).
		if cold[0] <= cold[2] || hot[2] <= hot[0] {
			t.Errorf("cold pixel %v should be blue, hot pixel %v red", cold, hot)
		}
		out.Close()
	}
	// Fixed bounds: values above hi are clipped, so 50 and 10 look the same,
	// and the colour does not depend on the map's own maximum.
	at10 := make([]float32, h*w)
	for i := range at10 {
		if heat[i] > 0 {
			at10[i] = 10
		}
	}
	a := Overlay(img, heat, h, w, 0, 10)
	defer a.Close()
	b := Overlay(img, at10, h, w, 0, 10)
	defer b.Close()
	// Compare inside the hot half, away from the interpolated boundary.
	if pa, pb := a.GetVecbAt(30, 75), b.GetVecbAt(30, 75); pa[0] != pb[0] || pa[1] != pb[1] || pa[2] != pb[2] {
		t.Errorf("value 50 gives %v, 10 gives %v: values above hi are not clipped", pa, pb)
	}
	c := Overlay(img, at10, h, w, 0, 100)
	defer c.Close()
	if pb, pc := b.GetVecbAt(30, 75), c.GetVecbAt(30, 75); pb[2] <= pc[2] {
		t.Errorf("value 10 with hi 10 gives %v, with hi 100 %v: want the first redder", pb, pc)
	}
}
