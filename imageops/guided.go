package imageops

import (
	"fmt"
	"image"
	"slices"

	"gocv.io/x/gocv"
)

// GuidedFilter filters an h x w map src along guide (h x w, values about
// 0..1) with He, Sun and Tang's guided filter: within every (2r+1)-square
// window the output is a linear function of the guide fitted to src by
// least squares, with eps as the ridge on the slope. Where src rises over an
// edge or a thin line of the guide, the output follows that structure at
// the guide's resolution; where the guide is flat (variance well below
// eps), it is a plain box smoothing of src. Patch scores are coarser than
// the defects they find (one grid cell is several pixels), so this is what
// puts a heat map's peak on a crack one or two pixels wide rather than
// beside it. r <= 0 returns a copy. Panics on invalid sizes.
func GuidedFilter(guide, src []float32, h, w, r int, eps float64) []float32 {
	checkMap("guided filter source", src, h, w)
	checkMap("guided filter guide", guide, h, w)
	if r <= 0 {
		return slices.Clone(src)
	}
	if !(eps > 0) {
		panic(fmt.Sprintf("imageops: guided filter: eps %v must be positive", eps))
	}
	k := image.Pt(2*r+1, 2*r+1)
	box := func(m []float32) []float32 {
		return viaMat(m, h, w, func(in gocv.Mat, out *gocv.Mat) { gocv.Blur(in, out, k) })
	}
	n := len(src)
	ip, ii := make([]float32, n), make([]float32, n)
	for i := range n {
		ip[i] = guide[i] * src[i]
		ii[i] = guide[i] * guide[i]
	}
	mi, mp, mip, mii := box(guide), box(src), box(ip), box(ii)
	a, b := ip, ii // reused
	for i := range n {
		cov := mip[i] - mi[i]*mp[i]
		v := max(mii[i]-mi[i]*mi[i], 0) // rounding can make it slightly negative
		a[i] = float32(float64(cov) / (float64(v) + eps))
		b[i] = mp[i] - a[i]*mi[i]
	}
	ma, mb := box(a), box(b)
	out := make([]float32, n)
	for i := range n {
		out[i] = ma[i]*guide[i] + mb[i]
	}
	return out
}

// Guide is img's luminance resized to size x size (area averaging), with
// its 1st to 99th percentiles stretched to 0..1, as GuidedFilter's guide:
// the stretch makes the filter's eps mean the same on a dim camera as on a
// bright one. img must be 8-bit with 1 or 3 channels.
func Guide(img gocv.Mat, size int) ([]float32, error) {
	if size <= 0 {
		return nil, fmt.Errorf("guide: size %d must be positive", size)
	}
	if img.Empty() || img.Type() != gocv.MatTypeCV8UC3 && img.Type() != gocv.MatTypeCV8UC1 {
		return nil, fmt.Errorf("guide: want a non-empty 8-bit image with 1 or 3 channels, got type %v", img.Type())
	}
	gray := img
	if img.Channels() == 3 {
		gray = gocv.NewMat()
		defer gray.Close()
		gocv.CvtColor(img, &gray, gocv.ColorBGRToGray)
	}
	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(gray, &small, image.Pt(size, size), 0, 0, gocv.InterpolationArea)
	px, err := small.DataPtrUint8()
	if err != nil {
		return nil, fmt.Errorf("guide: %w", err)
	}
	var hist [256]int
	for _, v := range px {
		hist[v]++
	}
	lo, hi := percentileByte(&hist, len(px), 0.01), percentileByte(&hist, len(px), 0.99)
	span := float32(max(hi-lo, 1))
	out := make([]float32, len(px))
	for i, v := range px {
		out[i] = min(max((float32(v)-float32(lo))/span, 0), 1)
	}
	return out, nil
}

// percentileByte is the smallest value with at least q of n counts at or
// below it.
func percentileByte(hist *[256]int, n int, q float64) int {
	need := int(q * float64(n))
	c := 0
	for v, k := range hist {
		c += k
		if c > need {
			return v
		}
	}
	return 255
}
