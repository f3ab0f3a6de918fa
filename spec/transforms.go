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
	// Flips mirrors each training view at random (left-right, top-bottom,
	// both or neither): for products whose good variation looks the same
	// mirrored.
	Flips bool `json:"flips,omitempty"`
	// Shift moves each training view by up to this share of its width and
	// height (mirrored border): for parts that never sit at exactly the same
	// place in the frame.
	Shift float64 `json:"shift,omitempty"`
}

// MaxShift bounds Transforms.Shift: beyond a quarter of the part, a view
// shows more border than part.
const MaxShift = 0.25

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
	if !(c.Shift >= 0 && c.Shift <= MaxShift) {
		return fmt.Errorf("transform: shift %g must be in [0, %g]", c.Shift, MaxShift)
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
//
// Flips and shifts, like jitter, apply to training views only: a part is
// scored as it is (or at TestAngles).
func (c Transforms) Jitters() bool { return c.Brightness > 0 || c.Contrast > 0 || c.Saturation > 0 }

// Unnamed reports whether training views get random changes that their
// angle does not name (jitter, flips, shifts): such views cannot be looked
// up by angle in a feature cache.
func (c Transforms) Unnamed() bool { return c.Jitters() || c.Flips || c.Shift > 0 }

// AnglesOnly is c without the changes Unnamed reports: all that test views
// (never jittered, mirrored or shifted) depend on.
func (c Transforms) AnglesOnly() Transforms {
	c.Brightness, c.Contrast, c.Saturation, c.Flips, c.Shift = 0, 0, 0, false, 0
	return c
}
