// Package features turns images into DifferNet feature vectors: each image is
// resized to every scale, run through the backbone, and each requested tap's
// map is averaged over space; the vectors of all scales and taps are
// concatenated. The unpooled maps can be kept for heatmaps.
package features

import (
	"context"
	"errors"
	"fmt"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/engine"
	"github.com/inspectd/inspectd/imageops"
)

// Config says how images become backbone input and which maps are pooled.
// It is stored in the model so scoring uses exactly what calibration used.
type Config struct {
	Taps   []string   `json:"taps"`
	Scales []int      `json:"scales"`
	Mean   [3]float32 `json:"mean"` // RGB, applied after scaling to [0,1]
	Std    [3]float32 `json:"std"`
}

// ImageNet normalisation, as torchvision's pretrained backbones expect.
var (
	ImageNetMean = [3]float32{0.485, 0.456, 0.406}
	ImageNetStd  = [3]float32{0.229, 0.224, 0.225}
)

// Validate names the first bad setting.
func (c Config) Validate() error {
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
	for i, s := range c.Std {
		if s <= 0 {
			return fmt.Errorf("features: normalisation std[%d] = %g must be > 0", i, s)
		}
	}
	return nil
}

// Map is one unpooled feature map (C x H x W) of one image at one scale and tap.
type Map struct {
	Scale, Tap int // indexes into Config.Scales and Config.Taps
	C, H, W    int
	Data       []float32
}

// Extractor computes feature vectors with one runtime. Safe for concurrent use
// when the runtime is.
type Extractor struct {
	rt       engine.Runtime
	cfg      Config
	maxBatch int
	channels []int // per tap, learnt from the first run
}

// New checks that the runtime returns the configured taps in order.
// maxBatch bounds how many images go into one runtime call (memory).
func New(rt engine.Runtime, cfg Config, maxBatch int) (*Extractor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	outs := rt.Outputs()
	if len(outs) != len(cfg.Taps) {
		return nil, fmt.Errorf("features: runtime returns %v; configuration wants taps %v", outs, cfg.Taps)
	}
	for i := range outs {
		if outs[i] != cfg.Taps[i] {
			return nil, fmt.Errorf("features: runtime returns %v; configuration wants taps %v", outs, cfg.Taps)
		}
	}
	if maxBatch <= 0 {
		maxBatch = 8
	}
	e := &Extractor{rt: rt, cfg: cfg, maxBatch: maxBatch}
	// One small run learns the channel counts, so Dim is known before any image.
	probe := engine.Tensor{Shape: []int{1, 3, 64, 64}, Data: make([]float32, 3*64*64)}
	res, err := rt.Run(context.Background(), probe)
	if err != nil {
		return nil, fmt.Errorf("features: probing backbone: %w", err)
	}
	for _, t := range res {
		e.channels = append(e.channels, t.Shape[1])
	}
	return e, nil
}

// Config returns the extractor's configuration.
func (e *Extractor) Config() Config { return e.cfg }

// Dim is the length of one feature vector.
func (e *Extractor) Dim() int {
	d := 0
	for _, c := range e.channels {
		d += c
	}
	return d * len(e.cfg.Scales)
}

// Channels is the number of channels of tap t.
func (e *Extractor) Channels(t int) int { return e.channels[t] }

// Offset is where the pooled vector of (scale, tap) starts in a feature vector.
func (e *Extractor) Offset(scale, tap int) int {
	per := 0
	for _, c := range e.channels {
		per += c
	}
	off := scale * per
	for t := 0; t < tap; t++ {
		off += e.channels[t]
	}
	return off
}

// Extract returns n x Dim pooled vectors for the images (8UC3, already
// cropped and transformed). With keepMaps it also returns, per image, the
// unpooled maps of every scale and tap.
func (e *Extractor) Extract(ctx context.Context, imgs []gocv.Mat, keepMaps bool) ([]float32, [][]Map, error) {
	n := len(imgs)
	dim := e.Dim()
	vecs := make([]float32, n*dim)
	var maps [][]Map
	if keepMaps {
		maps = make([][]Map, n)
	}
	for si, size := range e.cfg.Scales {
		plane := 3 * size * size
		for start := 0; start < n; start += e.maxBatch {
			end := min(start+e.maxBatch, n)
			in := engine.Tensor{Shape: []int{end - start, 3, size, size}, Data: make([]float32, (end-start)*plane)}
			for i := start; i < end; i++ {
				if err := imageops.ToCHW(imgs[i], size, e.cfg.Mean, e.cfg.Std, in.Data[(i-start)*plane:(i-start+1)*plane]); err != nil {
					return nil, nil, fmt.Errorf("preparing image %d at %d px: %w", i, size, err)
				}
			}
			outs, err := e.rt.Run(ctx, in)
			if err != nil {
				return nil, nil, fmt.Errorf("backbone at %d px: %w", size, err)
			}
			for ti, out := range outs {
				c, h, w := out.Shape[1], out.Shape[2], out.Shape[3]
				if c != e.channels[ti] {
					return nil, nil, fmt.Errorf("tap %s gave %d channels, expected %d", e.cfg.Taps[ti], c, e.channels[ti])
				}
				per := c * h * w
				off := e.Offset(si, ti)
				for i := start; i < end; i++ {
					m := out.Data[(i-start)*per : (i-start+1)*per]
					pool(m, c, h*w, vecs[i*dim+off:i*dim+off+c])
					if keepMaps {
						maps[i] = append(maps[i], Map{Scale: si, Tap: ti, C: c, H: h, W: w, Data: m})
					}
				}
			}
		}
	}
	return vecs, maps, nil
}

// pool writes the spatial mean of each channel, summed in float64 so large
// maps do not lose precision.
func pool(m []float32, c, hw int, dst []float32) {
	for ch := 0; ch < c; ch++ {
		var s float64
		for _, v := range m[ch*hw : (ch+1)*hw] {
			s += float64(v)
		}
		dst[ch] = float32(s / float64(hw))
	}
}
