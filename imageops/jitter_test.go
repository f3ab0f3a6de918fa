package imageops

import (
	"math"
	"math/rand/v2"
	"testing"

	"gocv.io/x/gocv"
)

func meanStd(b []byte) (mean, std float64) {
	for _, v := range b {
		mean += float64(v)
	}
	mean /= float64(len(b))
	for _, v := range b {
		std += (float64(v) - mean) * (float64(v) - mean)
	}
	return mean, math.Sqrt(std / float64(len(b)))
}

// saturation: mean spread between a pixel's channels.
func saturation(b []byte) float64 {
	var s float64
	for i := 0; i+2 < len(b); i += 3 {
		s += float64(max(b[i], b[i+1], b[i+2]) - min(b[i], b[i+1], b[i+2]))
	}
	return s / float64(len(b)/3)
}

const (
	either = iota
	vary
	fixed
)

func TestJitter(t *testing.T) {
	// Mid-range values so clipping does not hide the changes.
	src := gocv.NewMatWithSize(40, 40, gocv.MatTypeCV8UC3)
	defer src.Close()
	px, _ := src.DataPtrUint8()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range px {
		px[i] = uint8(70 + rng.IntN(110))
	}
	m0, s0 := meanStd(px)
	sat0 := saturation(px)

	t.Run("zero is identity", func(t *testing.T) {
		out := Jitter(src, 0, 0, 0, rand.New(rand.NewPCG(3, 4)))
		defer out.Close()
		if !equalMats(t, out, src) {
			t.Error("Jitter with all amounts 0 changed the image")
		}
	})
	t.Run("deterministic for an rng state", func(t *testing.T) {
		a := Jitter(src, 0.4, 0.4, 0.4, rand.New(rand.NewPCG(5, 6)))
		defer a.Close()
		b := Jitter(src, 0.4, 0.4, 0.4, rand.New(rand.NewPCG(5, 6)))
		defer b.Close()
		if !equalMats(t, a, b) {
			t.Error("same rng seed gave different images")
		}
	})
	// Over many draws each property moves by about its factor's range, and
	// only the jittered property moves.
	tests := []struct {
		name    string
		b, c, s float64
		want    [3]int // per statistic: vary, fixed, or either
	}{
		{"brightness", 0.5, 0, 0, [3]int{vary, vary, vary}},
		{"contrast", 0, 0.5, 0, [3]int{fixed, vary, vary}},
		// Blending with grey also shrinks the spread between channels, so
		// the overall standard deviation may move.
		{"saturation", 0, 0, 0.5, [3]int{fixed, either, vary}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 8))
			var minR, maxR [3]float64
			for i := range minR {
				minR[i], maxR[i] = math.Inf(1), math.Inf(-1)
			}
			for range 40 {
				out := Jitter(src, tc.b, tc.c, tc.s, rng)
				b := bytesOf(t, out)
				out.Close()
				m, s := meanStd(b)
				ratios := [3]float64{m / m0, s / s0, saturation(b) / sat0}
				for i, r := range ratios {
					minR[i], maxR[i] = min(minR[i], r), max(maxR[i], r)
				}
			}
			for i, want := range tc.want {
				spread := maxR[i] - minR[i]
				if want == vary && (spread < 0.5 || minR[i] < 0.4 || maxR[i] > 1.6) {
					t.Errorf("statistic %d ratio range [%.3f, %.3f], want about [0.5, 1.5]", i, minR[i], maxR[i])
				}
				if want == fixed && spread > 0.03 {
					t.Errorf("statistic %d moved (range [%.3f, %.3f]) though its property was not jittered", i, minR[i], maxR[i])
				}
			}
		})
	}
}
