// Package transform chooses the image transformations of DifferNet: random ones
// while training, T fixed ones while scoring. Which family fits depends on the
// product: full rotations suit textures and round parts; parts whose
// orientation is fixed on the line are hurt by them (measured), so they use
// small angles or none.
package transform

import (
	"math"
	"math/rand/v2"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/spec"
)

// Mode is a family of transformations.
type Mode = spec.TransformMode

const (
	None   = spec.TransformNone   // identity only: T is 1 whatever is asked
	Small  = spec.TransformSmall  // rotations within +-MaxAngle
	Rotate = spec.TransformRotate // rotations over the full circle (the paper's)
)

// Config is stored in the model so scoring transforms as training did; it
// lives in package spec, free of native code, for that reason.
type Config = spec.Transforms

// Apply returns img rotated by angle and, when rng is given (a training
// view), mirrored, shifted and colour-jittered at random as c asks. The
// caller closes the result.
func Apply(c Config, img gocv.Mat, angle float64, rng *rand.Rand) gocv.Mat {
	var out gocv.Mat
	if angle == 0 {
		out = img.Clone()
	} else {
		out = imageops.Rotate(img, angle)
	}
	if rng == nil {
		return out
	}
	then := func(next gocv.Mat) {
		out.Close()
		out = next
	}
	if c.Flips {
		switch rng.IntN(4) {
		case 1:
			then(imageops.HFlip(out))
		case 2:
			then(imageops.VFlip(out))
		case 3:
			then(imageops.HFlip(out))
			then(imageops.VFlip(out))
		}
	}
	if c.Shift > 0 {
		dx := int(math.Round((2*rng.Float64() - 1) * c.Shift * float64(out.Cols())))
		dy := int(math.Round((2*rng.Float64() - 1) * c.Shift * float64(out.Rows())))
		if dx != 0 || dy != 0 {
			then(imageops.Shift(out, dx, dy))
		}
	}
	if c.Jitters() {
		then(imageops.Jitter(out, c.Brightness, c.Contrast, c.Saturation, rng))
	}
	return out
}
