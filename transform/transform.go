// Package transform chooses the image transformations of DifferNet: random ones
// while training, T fixed ones while scoring. Which family fits depends on the
// product: full rotations suit textures and round parts; parts whose
// orientation is fixed on the line are hurt by them (measured), so they use
// small angles or none.
package transform

import (
	"fmt"
	"math/rand/v2"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/imageops"
)

// Mode is a family of transformations.
type Mode string

const (
	None   Mode = "none"   // identity only: T is 1 whatever is asked
	Small  Mode = "small"  // rotations within +-MaxAngle
	Rotate Mode = "rotate" // rotations over the full circle (the paper's)
)

// Config is stored in the model so scoring transforms as training did.
type Config struct {
	Mode       Mode    `json:"mode"`
	MaxAngle   float64 `json:"max_angle,omitempty"` // degrees, Small only
	Brightness float64 `json:"brightness,omitempty"`
	Contrast   float64 `json:"contrast,omitempty"`
	Saturation float64 `json:"saturation,omitempty"`
}

// Validate names the first bad setting.
func (c Config) Validate() error {
	switch c.Mode {
	case None, Rotate:
	case Small:
		if c.MaxAngle <= 0 || c.MaxAngle > 180 {
			return fmt.Errorf("transform: max angle %g must be in (0, 180] degrees for mode small", c.MaxAngle)
		}
	default:
		return fmt.Errorf("transform: unknown mode %q (want none, small or rotate)", c.Mode)
	}
	for name, v := range map[string]float64{"brightness": c.Brightness, "contrast": c.Contrast, "saturation": c.Saturation} {
		if v < 0 || v >= 1 {
			return fmt.Errorf("transform: %s jitter %g must be in [0, 1)", name, v)
		}
	}
	return nil
}

// TestAngles are the T fixed rotations used for scoring, in degrees.
func (c Config) TestAngles(t int) []float64 {
	if t < 1 || c.Mode == None {
		return []float64{0}
	}
	a := make([]float64, t)
	for i := range a {
		switch c.Mode {
		case Rotate:
			a[i] = float64(i) * 360 / float64(t)
		case Small:
			if t > 1 {
				a[i] = -c.MaxAngle + 2*c.MaxAngle*float64(i)/float64(t-1)
			}
		}
	}
	return a
}

// TrainAngle draws one random rotation for training.
func (c Config) TrainAngle(rng *rand.Rand) float64 {
	switch c.Mode {
	case Rotate:
		return rng.Float64()*360 - 180
	case Small:
		return (2*rng.Float64() - 1) * c.MaxAngle
	}
	return 0
}

// Jitters reports whether colour jitter is enabled.
func (c Config) Jitters() bool { return c.Brightness > 0 || c.Contrast > 0 || c.Saturation > 0 }

// Apply returns img rotated by angle, plus colour jitter when rng is given and
// jitter is on. The caller closes the result.
func (c Config) Apply(img gocv.Mat, angle float64, rng *rand.Rand) gocv.Mat {
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
