// Package transform chooses the image transformations of DifferNet: random ones
// while training, T fixed ones while scoring. Which family fits depends on the
// product: full rotations suit textures and round parts; parts whose
// orientation is fixed on the line are hurt by them (measured), so they use
// small angles or none.
package transform

import (
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

// Apply returns img rotated by angle, plus colour jitter of c when rng is
// given and jitter is on. The caller closes the result.
func Apply(c Config, img gocv.Mat, angle float64, rng *rand.Rand) gocv.Mat {
	var out gocv.Mat
	if angle == 0 {
		out = img.Clone()
	} else {
		out = imageops.Rotate(img, angle)
	}
	if rng != nil && c.Jitters() {
		j := imageops.Jitter(out, c.Brightness, c.Contrast, c.Saturation, rng)
		out.Close()
		out = j
	}
	return out
}
