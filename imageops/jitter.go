package imageops

import (
	"math/rand/v2"

	"gocv.io/x/gocv"
)

// Jitter changes brightness, contrast and saturation of an 8UC3 BGR image
// by random factors, as torchvision's ColorJitter does: each factor is
// uniform in [max(0, 1-x), 1+x] (x = 0 leaves that property alone), and the
// three adjustments are applied in a random order. Brightness scales the
// pixels, contrast blends with the mean grey level, saturation blends with
// the grey image (ITU-R 601 luma). Unlike torchvision the intermediate
// results are kept in float and rounded once at the end. Negative amounts
// count as 0. Panics if src is not 8UC3 (Decode always returns 8UC3).
func Jitter(src gocv.Mat, brightness, contrast, saturation float64, rng *rand.Rand) gocv.Mat {
	if err := require8UC3(src, "jitter"); err != nil {
		panic("imageops: " + err.Error())
	}
	in, release, err := pixelBytes(src)
	if err != nil {
		panic("imageops: jitter: " + err.Error())
	}
	defer release()

	factor := func(x float64) (float32, bool) {
		if x <= 0 {
			return 1, false
		}
		lo := max(0, 1-x)
		return float32(lo + rng.Float64()*(1+x-lo)), true
	}
	// Factors first, then order: the same rng draws regardless of order.
	fb, okB := factor(brightness)
	fc, okC := factor(contrast)
	fs, okS := factor(saturation)

	px := make([]float32, len(in))
	for i, v := range in {
		px[i] = float32(v)
	}
	for _, op := range rng.Perm(3) {
		switch {
		case op == 0 && okB:
			for i := range px {
				px[i] = clamp255(px[i] * fb)
			}
		case op == 1 && okC:
			var sum float64
			for i := 0; i+2 < len(px); i += 3 {
				sum += float64(luma(px[i], px[i+1], px[i+2]))
			}
			mean := float32(sum / float64(len(px)/3))
			for i := range px {
				px[i] = clamp255(fc*px[i] + (1-fc)*mean)
			}
		case op == 2 && okS:
			for i := 0; i+2 < len(px); i += 3 {
				g := luma(px[i], px[i+1], px[i+2])
				for c := range 3 {
					px[i+c] = clamp255(fs*px[i+c] + (1-fs)*g)
				}
			}
		}
	}

	dst := gocv.NewMatWithSize(src.Rows(), src.Cols(), gocv.MatTypeCV8UC3)
	out, err := dst.DataPtrUint8()
	if err != nil {
		dst.Close()
		panic("imageops: jitter: " + err.Error())
	}
	for i, v := range px {
		out[i] = uint8(v + 0.5)
	}
	return dst
}

// luma of a BGR pixel.
func luma(b, g, r float32) float32 { return 0.299*r + 0.587*g + 0.114*b }

func clamp255(v float32) float32 { return min(max(v, 0), 255) }
