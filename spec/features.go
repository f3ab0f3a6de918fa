package spec

import (
	"errors"
	"fmt"
)

// Features says how images become backbone input and which maps are pooled.
// It is stored in the model so scoring uses exactly what calibration used.
type Features struct {
	Taps   []string   `json:"taps"`
	Scales []int      `json:"scales"`
	Mean   [3]float32 `json:"mean"` // RGB, applied after scaling to [0,1]
	Std    [3]float32 `json:"std"`
	// Aspect keeps the image's aspect ratio: the short side becomes the
	// scale and the long side follows, both rounded to Stride. Without it
	// every image is squashed to scale x scale, as in the paper; cameras
	// give strips and odd crops, which squashing distorts.
	Aspect bool `json:"aspect,omitempty"`
	Stride int  `json:"stride,omitempty"` // the backbone's largest stride (default 32)
}

// maxSide bounds the long side of an aspect-true input, so a thin strip
// cannot ask the backbone for an enormous map.
const maxSide = 4096

// InputSize is the backbone input (w, h) for an image of cols x rows at scale.
func (c Features) InputSize(cols, rows, scale int) (w, h int) {
	if !c.Aspect || cols <= 0 || rows <= 0 {
		return scale, scale
	}
	stride := c.Stride
	if stride <= 0 {
		stride = 32
	}
	round := func(v float64) int { return max(stride, int(v/float64(stride)+0.5)*stride) }
	short := float64(scale)
	if cols <= rows {
		w, h = round(short), round(short*float64(rows)/float64(cols))
	} else {
		w, h = round(short*float64(cols)/float64(rows)), round(short)
	}
	return min(w, maxSide), min(h, maxSide)
}

// Validate names the first bad setting.
func (c Features) Validate() error {
	if len(c.Taps) == 0 {
		return errors.New("features: no backbone taps configured")
	}
	if len(c.Scales) == 0 {
		return errors.New("features: no scales configured")
	}
	for _, s := range c.Scales {
		if s < 32 || s > 2048 {
			return fmt.Errorf("features: scale %d outside 32..2048 pixels", s)
		}
	}
	if c.Stride < 0 || c.Stride > 64 {
		return fmt.Errorf("features: stride %d outside 0..64", c.Stride)
	}
	for i, s := range c.Std {
		if s <= 0 {
			return fmt.Errorf("features: normalisation std[%d] = %g must be > 0", i, s)
		}
	}
	return nil
}
