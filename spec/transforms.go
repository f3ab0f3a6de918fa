package spec

import (
	"fmt"
	"math/rand/v2"
)

// TransformMode is a family of transformations.
type TransformMode string

const (
	TransformNone   TransformMode = "none"   // identity only: T is 1 whatever is asked
	TransformSmall  TransformMode = "small"  // rotations within +-MaxAngle
	TransformRotate TransformMode = "rotate" // rotations over the full circle (the paper's)
)

// Transforms is stored in the model so scoring transforms as training did.
type Transforms struct {
	Mode       TransformMode `json:"mode"`
	MaxAngle   float64       `json:"max_angle,omitempty"` // degrees, Small only
	Brightness float64       `json:"brightness,omitempty"`
	Contrast   float64       `json:"contrast,omitempty"`
	Saturation float64       `json:"saturation,omitempty"`
}

// Validate names the first bad setting.
func (c Transforms) Validate() error {
	switch c.Mode {
	case TransformNone, TransformRotate:
	case TransformSmall:
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
func (c Transforms) TestAngles(t int) []float64 {
	if t < 1 || c.Mode == TransformNone {
		return []float64{0}
	}
	a := make([]float64, t)
	for i := range a {
		switch c.Mode {
		case TransformRotate:
			a[i] = float64(i) * 360 / float64(t)
		case TransformSmall:
			if t > 1 {
				a[i] = -c.MaxAngle + 2*c.MaxAngle*float64(i)/float64(t-1)
			}
		}
	}
	return a
}

// TrainAngle draws one random rotation for training.
func (c Transforms) TrainAngle(rng *rand.Rand) float64 {
	switch c.Mode {
	case TransformRotate:
		return rng.Float64()*360 - 180
	case TransformSmall:
		return (2*rng.Float64() - 1) * c.MaxAngle
	}
	return 0
}

// Jitters reports whether colour jitter is enabled.
func (c Transforms) Jitters() bool { return c.Brightness > 0 || c.Contrast > 0 || c.Saturation > 0 }
