package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/local"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/transform"
)

// LocalMethod is the stored configuration of a patch-level method: how maps
// become patches, and the density's own settings.
type LocalMethod struct {
	Grid    local.GridConfig `json:"grid"`
	Density json.RawMessage  `json:"density,omitempty"`
	// Top is the share of the part's area whose mean score is the image
	// score; 0 takes the smoothed map's maximum.
	Top float64 `json:"top,omitempty"`
}

// Validate names the first bad setting.
func (m LocalMethod) Validate(taps int) error {
	if !(m.Top >= 0 && m.Top <= 1) {
		return fmt.Errorf("local: top share %v outside [0, 1]", m.Top)
	}
	return m.Grid.Validate(taps)
}

// Local scores parts with a patch-level density: every position of the
// finest tap's grid is scored, the score maps of the T views are turned back
// into the part's frame and averaged, and the smoothed map is both the
// heatmap and, through its maximum, the image score. No gradient pass.
type Local struct {
	Dens       local.Density
	Grid       local.GridConfig
	Top        float64 // see LocalMethod.Top
	Transforms transform.Config
	Sigma      float64 // blur of the score map at HeatSize, in pixels
}

// loadLocal rebuilds a model's patch density.
func loadLocal(m *model.Model, ex *features.Extractor) (*Local, error) {
	man := m.Manifest
	var lm LocalMethod
	if err := json.Unmarshal(man.MethodConfig, &lm); err != nil {
		return nil, fmt.Errorf("model %s: %s configuration: %w", man.ID, man.Method, err)
	}
	if err := lm.Validate(len(man.Features.Taps)); err != nil {
		return nil, fmt.Errorf("model %s: %w", man.ID, err)
	}
	d, err := local.New(string(man.Method), lm.Density)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", man.ID, err)
	}
	dim := 0
	for t := range man.Features.Taps {
		c := ex.Channels(t)
		if k := lm.Grid.Dims[t]; k > 0 && k < c {
			c = k
		}
		dim += c
	}
	if err := d.Load(m, dim); err != nil {
		return nil, err
	}
	return &Local{Dens: d, Grid: lm.Grid, Top: lm.Top, Transforms: man.Transforms, Sigma: man.HeatmapSigma}, nil
}

// Patches returns the patch rows of each view (already transformed), with
// the grid's size and width.
func (l *Local) Patches(ctx context.Context, ex *features.Extractor, views []gocv.Mat) (rows [][]float32, h, w, dim int, err error) {
	maps, err := ex.Maps(ctx, views, 0)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	rows = make([][]float32, len(views))
	for i, m := range maps {
		var hh, ww int
		if rows[i], hh, ww, dim, err = local.Grid(m, l.Grid); err != nil {
			return nil, 0, 0, 0, err
		}
		if i > 0 && (hh != h || ww != w) {
			return nil, 0, 0, 0, fmt.Errorf("local: views gave grids %dx%d and %dx%d", w, h, ww, hh)
		}
		h, w = hh, ww
	}
	return rows, h, w, dim, nil
}

// Inspect scores a part (already cropped) at the given rotations. With
// exclude >= 0 the density leaves that good image out (calibration's
// leave-one-out scores). It returns the image score and the HeatSize x
// HeatSize heat map in the part's frame.
func (l *Local) Inspect(ctx context.Context, ex *features.Extractor, part gocv.Mat, angles []float64, exclude int32) (float64, []float32, error) {
	views := make([]gocv.Mat, len(angles))
	for i, a := range angles {
		views[i] = l.Transforms.Apply(part, a, nil)
	}
	defer func() {
		for _, v := range views {
			v.Close()
		}
	}()
	rows, h, w, _, err := l.Patches(ctx, ex, views)
	if err != nil {
		return 0, nil, err
	}
	acc := make([]float32, HeatSize*HeatSize)
	for i, a := range angles {
		s, err := l.Dens.Score(ctx, rows[i], h*w, exclude)
		if err != nil {
			return 0, nil, err
		}
		big := imageops.ResizeMap(s, h, w, HeatSize, HeatSize)
		if a != 0 {
			big = imageops.RotateMap(big, HeatSize, HeatSize, -a)
		}
		for p, v := range big {
			acc[p] += v
		}
	}
	inv := 1 / float32(len(angles))
	for p := range acc {
		acc[p] *= inv
	}
	heat := imageops.GaussianBlur(acc, HeatSize, HeatSize, l.Sigma)
	if l.Top > 0 {
		return TopMean(acc, l.Top), heat, nil
	}
	var top float32
	for _, v := range heat {
		top = max(top, v)
	}
	return float64(top), heat, nil
}

// TopMean is the mean of the largest share of values (at least one): a
// defect that spreads over an area raises it more than one hot cell, and
// one noisy cell of a good part raises it less than the maximum would.
func TopMean(v []float32, share float64) float64 {
	k := max(1, min(len(v), int(math.Round(share*float64(len(v))))))
	c := slices.Clone(v)
	slices.Sort(c)
	var s float64
	for _, x := range c[len(c)-k:] {
		s += float64(x)
	}
	return s / float64(k)
}
