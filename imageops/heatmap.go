package imageops

import (
	"fmt"
	"image"
	"math"

	"gocv.io/x/gocv"
)

// The map helpers take row-major h x w []float32 maps. A length that does
// not match h*w, or a non-positive size, is a programming error and panics
// like an out-of-range index would.

// MapToMat copies an h x w map into a new 32FC1 Mat.
func MapToMat(src []float32, h, w int) gocv.Mat {
	checkMap("map to Mat", src, h, w)
	m := gocv.NewMatWithSize(h, w, gocv.MatTypeCV32F)
	d, err := m.DataPtrFloat32()
	if err != nil {
		m.Close()
		panic("imageops: map to Mat: " + err.Error())
	}
	copy(d, src)
	return m
}

// MatToMap copies a 32FC1 Mat into a new map, returning its rows and cols.
func MatToMap(m gocv.Mat) (heat []float32, h, w int, err error) {
	if m.Empty() || m.Type() != gocv.MatTypeCV32F {
		return nil, 0, 0, fmt.Errorf("converting Mat to map: want a non-empty 32FC1 Mat, got %dx%d type %v", m.Cols(), m.Rows(), m.Type())
	}
	c := m
	if !m.IsContinuous() {
		c = m.Clone()
		defer c.Close()
	}
	d, err := c.DataPtrFloat32()
	if err != nil {
		return nil, 0, 0, fmt.Errorf("converting Mat to map: %w", err)
	}
	return append([]float32(nil), d...), m.Rows(), m.Cols(), nil
}

// ResizeMap resizes an h x w map to H x W bilinearly (pixel centres aligned
// as in OpenCV and PyTorch's align_corners=False).
func ResizeMap(src []float32, h, w, H, W int) []float32 {
	checkMap("resize map", src, h, w)
	if H <= 0 || W <= 0 {
		panic(fmt.Sprintf("imageops: resize map: target %dx%d must be positive", W, H))
	}
	if h == H && w == W {
		return append([]float32(nil), src...)
	}
	return viaMat(src, h, w, func(in gocv.Mat, out *gocv.Mat) {
		gocv.Resize(in, out, image.Pt(W, H), 0, 0, gocv.InterpolationLinear)
	})
}

// RotateMap rotates an h x w map by deg degrees counter-clockwise about its
// centre, with the geometry of Rotate, so RotateMap(m, -deg) takes a map
// computed on Rotate(img, deg) back to the frame of img.
//
// Uncovered corners are zero, not reflected as in Rotate: a map carries
// evidence about positions, and mirroring it would copy a defect's response
// to a place where there is no defect. Zero means "no evidence from this
// transformation there"; the part is usually away from the corners.
func RotateMap(src []float32, h, w int, deg float64) []float32 {
	checkMap("rotate map", src, h, w)
	if deg == 0 {
		return append([]float32(nil), src...)
	}
	return viaMat(src, h, w, func(in gocv.Mat, out *gocv.Mat) {
		r := warpRotate(in, deg, gocv.BorderConstant)
		defer r.Close()
		r.CopyTo(out)
	})
}

// GaussianBlur blurs an h x w map with a Gaussian of standard deviation
// sigma pixels (kernel about 8 sigma wide, reflect-101 border so mass near
// the edges is not lost). sigma <= 0 returns a copy.
func GaussianBlur(src []float32, h, w int, sigma float64) []float32 {
	checkMap("blur map", src, h, w)
	if sigma <= 0 {
		return append([]float32(nil), src...)
	}
	return viaMat(src, h, w, func(in gocv.Mat, out *gocv.Mat) {
		gocv.GaussianBlur(in, out, image.Point{}, sigma, sigma, gocv.BorderReflect101)
	})
}

// OverlayAlpha is the weight of the colour-mapped heat in Overlay.
const OverlayAlpha = 0.5

// Overlay colours heat (an h x w map, resized to the image) with
// COLORMAP_JET and blends it over img. lo and hi are fixed bounds mapped to
// the cold and hot ends, with values outside clipped, rather than each map's
// own min and max: a good part then stays blue instead of having its noise
// stretched to red, and overlays of different parts compare. If hi <= lo the
// map is thresholded at lo; NaN counts as cold. img must be 8-bit with 1 or
// 3 channels; the result is 8UC3 of img's size. Panics on invalid input.
func Overlay(img gocv.Mat, heat []float32, h, w int, lo, hi float32) gocv.Mat {
	checkMap("overlay", heat, h, w)
	if img.Empty() {
		panic("imageops: overlay: empty image")
	}
	base := img
	switch img.Type() {
	case gocv.MatTypeCV8UC3:
	case gocv.MatTypeCV8UC1:
		base = gocv.NewMat()
		defer base.Close()
		gocv.CvtColor(img, &base, gocv.ColorGrayToBGR)
	default:
		panic(fmt.Sprintf("imageops: overlay: want an 8UC3 or 8UC1 image, got type %v", img.Type()))
	}
	H, W := img.Rows(), img.Cols()
	full := ResizeMap(heat, h, w, H, W)

	gray := gocv.NewMatWithSize(H, W, gocv.MatTypeCV8U)
	defer gray.Close()
	g, err := gray.DataPtrUint8()
	if err != nil {
		panic("imageops: overlay: " + err.Error())
	}
	span := hi - lo
	for i, v := range full {
		var t float32
		switch {
		case math.IsNaN(float64(v)):
			t = 0
		case span <= 0:
			if v >= lo {
				t = 1
			}
		default:
			t = min(max((v-lo)/span, 0), 1)
		}
		g[i] = uint8(t*255 + 0.5)
	}
	colored := gocv.NewMat()
	defer colored.Close()
	gocv.ApplyColorMap(gray, &colored, gocv.ColormapJet)
	out := gocv.NewMat()
	gocv.AddWeighted(base, 1-OverlayAlpha, colored, OverlayAlpha, 0, &out)
	return out
}

func checkMap(what string, m []float32, h, w int) {
	if h <= 0 || w <= 0 {
		panic(fmt.Sprintf("imageops: %s: size %dx%d must be positive", what, w, h))
	}
	if len(m) != h*w {
		panic(fmt.Sprintf("imageops: %s: map has %d values, want %d x %d = %d", what, len(m), h, w, h*w))
	}
}

// viaMat runs an OpenCV operation on a map and returns its result as a map.
func viaMat(src []float32, h, w int, op func(in gocv.Mat, out *gocv.Mat)) []float32 {
	in := MapToMat(src, h, w)
	defer in.Close()
	out := gocv.NewMat()
	defer out.Close()
	op(in, &out)
	res, _, _, err := MatToMap(out)
	if err != nil {
		panic("imageops: " + err.Error())
	}
	return res
}
