// Package features turns images into DifferNet feature vectors: each image is
// resized to every scale, run through the backbone, and each requested tap's
// map is averaged over space; the vectors of all scales and taps are
// concatenated. The unpooled maps can be kept for heatmaps.
package features

import (
	"context"
	"fmt"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/engine"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/spec"
)

// Config says how images become backbone input and which maps are pooled.
// It lives in package spec, free of native code, because the model file
// records it.
type Config = spec.Features

// ImageNet normalisation, as torchvision's pretrained backbones expect.
var (
	ImageNetMean = [3]float32{0.485, 0.456, 0.406}
	ImageNetStd  = [3]float32{0.229, 0.224, 0.225}
)

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
		for _, b := range e.batches(imgs, size) {
			outs, err := e.run(ctx, imgs[b.start:b.end], b.w, b.h)
			if err != nil {
				return nil, nil, err
			}
			for ti, out := range outs {
				c, h, w := out.Shape[1], out.Shape[2], out.Shape[3]
				per := c * h * w
				off := e.Offset(si, ti)
				for i := b.start; i < b.end; i++ {
					m := out.Data[(i-b.start)*per : (i-b.start+1)*per]
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

// batch is a run of images that share one input size.
type batch struct{ start, end, w, h int }

// batches splits imgs into runs of at most maxBatch images of one input size.
func (e *Extractor) batches(imgs []gocv.Mat, scale int) []batch {
	var out []batch
	for i, img := range imgs {
		w, h := e.cfg.InputSize(img.Cols(), img.Rows(), scale)
		if n := len(out); n > 0 && out[n-1].w == w && out[n-1].h == h && out[n-1].end-out[n-1].start < e.maxBatch {
			out[n-1].end = i + 1
			continue
		}
		out = append(out, batch{start: i, end: i + 1, w: w, h: h})
	}
	return out
}

// run feeds imgs, resized to w x h, through the backbone in one call.
func (e *Extractor) run(ctx context.Context, imgs []gocv.Mat, w, h int) ([]engine.Tensor, error) {
	plane := 3 * w * h
	in := engine.Tensor{Shape: []int{len(imgs), 3, h, w}, Data: make([]float32, len(imgs)*plane)}
	for i, img := range imgs {
		if err := imageops.ToCHWSize(img, w, h, e.cfg.Mean, e.cfg.Std, in.Data[i*plane:(i+1)*plane]); err != nil {
			return nil, fmt.Errorf("preparing image %d at %dx%d px: %w", i, w, h, err)
		}
	}
	outs, err := e.rt.Run(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("backbone at %dx%d px: %w", w, h, err)
	}
	for ti, out := range outs {
		if len(out.Shape) != 4 || out.Shape[0] != len(imgs) || out.Shape[1] != e.channels[ti] {
			return nil, fmt.Errorf("tap %s gave shape %v, expected %d images of %d channels", e.cfg.Taps[ti], out.Shape, len(imgs), e.channels[ti])
		}
	}
	return outs, nil
}

// Maps returns, for each image, the unpooled maps of every tap at one scale
// (an index into Config.Scales): what patch-level densities score.
func (e *Extractor) Maps(ctx context.Context, imgs []gocv.Mat, scale int) ([][]Map, error) {
	if scale < 0 || scale >= len(e.cfg.Scales) {
		return nil, fmt.Errorf("features: scale index %d outside the %d scales", scale, len(e.cfg.Scales))
	}
	maps := make([][]Map, len(imgs))
	for _, b := range e.batches(imgs, e.cfg.Scales[scale]) {
		outs, err := e.run(ctx, imgs[b.start:b.end], b.w, b.h)
		if err != nil {
			return nil, err
		}
		for ti, out := range outs {
			c, h, w := out.Shape[1], out.Shape[2], out.Shape[3]
			per := c * h * w
			for i := b.start; i < b.end; i++ {
				maps[i] = append(maps[i], Map{Scale: scale, Tap: ti, C: c, H: h, W: w, Data: out.Data[(i-b.start)*per : (i-b.start+1)*per]})
			}
		}
	}
	return maps, nil
}
