package imageops

import (
	"fmt"
	"image"
	"math"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/spec"
)

// Crop returns a copy of the region r of m. The copy owns its pixels, so it
// stays valid after m is closed and is continuous (ToCHW and friends read its
// bytes directly).
func Crop(m gocv.Mat, r image.Rectangle) (gocv.Mat, error) {
	if m.Empty() {
		return gocv.Mat{}, fmt.Errorf("crop %v: empty image", r)
	}
	if r.Empty() {
		return gocv.Mat{}, fmt.Errorf("crop %v: empty rectangle", r)
	}
	bounds := image.Rect(0, 0, m.Cols(), m.Rows())
	if !r.In(bounds) {
		return gocv.Mat{}, fmt.Errorf("crop %v: outside the %dx%d image", r, m.Cols(), m.Rows())
	}
	region := m.Region(r)
	defer region.Close()
	return region.Clone(), nil
}

// ParseROI parses a region of interest written "x,y,w,h"; the form is
// spec.ParseROI's (model files record it), named here for the image code.
func ParseROI(s string) (image.Rectangle, error) { return spec.ParseROI(s) }

// ParseOptionalROI is ParseROI where an empty setting means the whole image
// (the zero rectangle).
func ParseOptionalROI(s string) (image.Rectangle, error) {
	if s == "" {
		return image.Rectangle{}, nil
	}
	return spec.ParseROI(s)
}

// Rotate rotates src by deg degrees counter-clockwise (as displayed, the
// convention of OpenCV and torchvision) about the image centre, keeping its
// size, with bilinear interpolation. Works for any Mat type warpAffine
// accepts, in particular 8UC3 images and 32FC1 maps.
//
// Corners uncovered by the rotation are filled by reflect-101 (mirrored
// content without repeating the edge pixel). Training and testing use this
// one policy: constant-filled corners would be a feature that good parts
// show only when rotated, and mirrored texture looks like more of the part
// or background rather than like a defect.
func Rotate(src gocv.Mat, deg float64) gocv.Mat {
	if deg == 0 {
		return src.Clone()
	}
	return warpRotate(src, deg, gocv.BorderReflect101)
}

// warpRotate rotates about the true centre ((w-1)/2, (h-1)/2).
// gocv.GetRotationMatrix2D takes an integer centre, which shifts even-sized
// images by half a pixel, so the matrix is built here.
func warpRotate(src gocv.Mat, deg float64, border gocv.BorderType) gocv.Mat {
	sin, cos := math.Sincos(deg * math.Pi / 180)
	// Snap so multiples of 90 degrees move pixels exactly.
	sin, cos = snap(sin), snap(cos)
	cx := float64(src.Cols()-1) / 2
	cy := float64(src.Rows()-1) / 2
	m := gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F)
	defer m.Close()
	m.SetDoubleAt(0, 0, cos)
	m.SetDoubleAt(0, 1, sin)
	m.SetDoubleAt(0, 2, (1-cos)*cx-sin*cy)
	m.SetDoubleAt(1, 0, -sin)
	m.SetDoubleAt(1, 1, cos)
	m.SetDoubleAt(1, 2, sin*cx+(1-cos)*cy)
	dst := gocv.NewMat()
	gocv.WarpAffineWithParams(src, &dst, m, image.Pt(src.Cols(), src.Rows()),
		gocv.InterpolationLinear, border, colorBlack)
	return dst
}

func snap(v float64) float64 {
	for _, exact := range [...]float64{-1, 0, 1} {
		if math.Abs(v-exact) < 1e-12 {
			return exact
		}
	}
	return v
}

// HFlip mirrors src left-right.
func HFlip(src gocv.Mat) gocv.Mat {
	dst := gocv.NewMat()
	gocv.Flip(src, &dst, 1)
	return dst
}

// VFlip mirrors src top-bottom.
func VFlip(src gocv.Mat) gocv.Mat {
	dst := gocv.NewMat()
	gocv.Flip(src, &dst, 0)
	return dst
}

// Shift moves src by dx pixels right and dy down, keeping its size; the
// uncovered border is filled by reflect-101, as in Rotate.
func Shift(src gocv.Mat, dx, dy int) gocv.Mat {
	m := gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F)
	defer m.Close()
	m.SetDoubleAt(0, 0, 1)
	m.SetDoubleAt(0, 2, float64(dx))
	m.SetDoubleAt(1, 1, 1)
	m.SetDoubleAt(1, 2, float64(dy))
	dst := gocv.NewMat()
	gocv.WarpAffineWithParams(src, &dst, m, image.Pt(src.Cols(), src.Rows()),
		gocv.InterpolationNearestNeighbor, gocv.BorderReflect101, colorBlack)
	return dst
}
