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
	// NormFloor, when > 0, standardises score maps per position with the
	// good parts' leave-one-out maps (PositionNorm), this share of the
	// median deviation added to every deviation.
	NormFloor float64 `json:"norm_floor,omitempty"`
	// HeatGuide, when > 0, is the eps of the guided filter that refines the
	// heat map along the part's own structure over HeatGuideRadius heat
	// pixels (imageops.GuidedFilter): a grid cell is several pixels, a crack
	// one or two. The image score does not use it. Calibration sets the
	// radius from the grid (GuideRadius); models made before it have 0 and
	// keep the plain blurred map.
	HeatGuide       float64 `json:"heat_guide,omitempty"`
	HeatGuideRadius int     `json:"heat_guide_radius,omitempty"`
}

// Validate names the first bad setting.
func (m LocalMethod) Validate(taps int) error {
	if !(m.Top >= 0 && m.Top <= 1) {
		return fmt.Errorf("local: top share %v outside [0, 1]", m.Top)
	}
	if !(m.NormFloor >= 0 && m.NormFloor <= 100) {
		return fmt.Errorf("local: norm floor %v outside [0, 100]", m.NormFloor)
	}
	if !(m.HeatGuide >= 0 && m.HeatGuide <= 1) {
		return fmt.Errorf("local: heat guide eps %v outside [0, 1]", m.HeatGuide)
	}
	if m.HeatGuideRadius < 0 || m.HeatGuideRadius > HeatSize/4 {
		return fmt.Errorf("local: heat guide radius %d outside 0..%d", m.HeatGuideRadius, HeatSize/4)
	}
	return m.Grid.Validate(taps)
}

// Every patch density's stored configuration is bounded when the model file
// is read (model.Load), before anything is built from it: the grid's
// settings and the density's own (its factory refuses values out of bounds
// without allocating).
func init() {
	for _, name := range local.Names() {
		model.RegisterBounds(model.Method(name), func(raw json.RawMessage, _ int) error {
			var lm LocalMethod
			if err := json.Unmarshal(raw, &lm); err != nil {
				return fmt.Errorf("configuration: %w", err)
			}
			if err := lm.Validate(len(lm.Grid.Dims)); err != nil {
				return err
			}
			_, err := local.New(name, lm.Density)
			return err
		})
	}
}

// Local scores parts with a patch-level density: every position of the
// finest tap's grid is scored, the score maps of the T views are turned back
// into the part's frame and averaged, and the smoothed map is both the
// heatmap and, through its maximum, the image score. No gradient pass.
type Local struct {
	Dens       local.Density
	Grid       local.GridConfig
	Top        float64       // see LocalMethod.Top
	Norm       *PositionNorm // nil: raw distances
	Transforms transform.Config
	Sigma      float64 // blur of the score map at HeatSize, in pixels
	// Guide and GuideRadius: see LocalMethod.HeatGuide (0: no refinement).
	Guide       float64
	GuideRadius int
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
	norm, err := loadNorm(m)
	if err != nil {
		return nil, err
	}
	return &Local{Norm: norm, Dens: d, Grid: lm.Grid, Top: lm.Top, Transforms: man.Transforms, Sigma: man.HeatmapSigma,
		Guide: lm.HeatGuide, GuideRadius: lm.HeatGuideRadius}, nil
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

// Inspect scores a part (already cropped) at the given rotations: the
// image score and, with withHeat, the HeatSize x HeatSize heat map in the
// part's frame.
func (l *Local) Inspect(ctx context.Context, ex *features.Extractor, part gocv.Mat, angles []float64, withHeat bool) (float64, []float32, error) {
	m, err := l.Map(ctx, ex, part, angles, -1)
	if err != nil {
		return 0, nil, err
	}
	s, heat := l.Finish(m, l.Norm, withHeat)
	if withHeat && l.Guide > 0 && l.GuideRadius > 0 {
		if heat, err = l.refine(part, heat); err != nil {
			return 0, nil, err
		}
	}
	return s, heat, nil
}

// refine sharpens the heat map along the part's own structure (see
// LocalMethod.HeatGuide); negative overshoot at the guide's edges is cut,
// as a heat map is >= 0.
func (l *Local) refine(part gocv.Mat, heat []float32) ([]float32, error) {
	g, err := imageops.Guide(part, HeatSize)
	if err != nil {
		return nil, fmt.Errorf("heat map guide: %w", err)
	}
	out := imageops.GuidedFilter(g, heat, HeatSize, HeatSize, l.GuideRadius, l.Guide)
	for i, v := range out {
		out[i] = max(v, 0)
	}
	return out, nil
}

// GuideRadius is the heat guide's radius for a grid of h x w cells: about
// one cell of the HeatSize map, the scale at which patch scores are unsure
// where within their cell the defect lies.
func GuideRadius(h, w int) int {
	if h <= 0 || w <= 0 {
		return 1
	}
	return max(1, int(math.Round(HeatSize/math.Sqrt(float64(h*w)))))
}

// Map is the raw patch score map of a part (HeatSize x HeatSize, the views'
// maps turned back into the part's frame and averaged). With exclude >= 0
// the density leaves that good image out (calibration's leave-one-out maps).
func (l *Local) Map(ctx context.Context, ex *features.Extractor, part gocv.Mat, angles []float64, exclude int32) ([]float32, error) {
	views := make([]gocv.Mat, len(angles))
	for i, a := range angles {
		views[i] = transform.Apply(l.Transforms, part, a, nil)
	}
	defer func() {
		for _, v := range views {
			v.Close()
		}
	}()
	rows, h, w, _, err := l.Patches(ctx, ex, views)
	if err != nil {
		return nil, err
	}
	return l.MapRows(ctx, rows, h, w, angles, exclude)
}

// MapRows is Map on patch rows already extracted, one row set per angle
// (calibration scores the same rows against several candidate models).
func (l *Local) MapRows(ctx context.Context, rows [][]float32, h, w int, angles []float64, exclude int32) ([]float32, error) {
	if len(rows) != len(angles) {
		return nil, fmt.Errorf("local: %d row sets for %d angles", len(rows), len(angles))
	}
	acc := make([]float32, HeatSize*HeatSize)
	pd, positional := l.Dens.(local.Positional)
	var at []local.Position
	if positional {
		at = local.GridPositions(h, w)
	}
	for i, a := range angles {
		var s []float32
		var err error
		if positional {
			s, err = pd.ScoreAt(ctx, rows[i], h*w, at, exclude)
		} else {
			s, err = l.Dens.Score(ctx, rows[i], h*w, exclude)
		}
		if err != nil {
			return nil, err
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
	return acc, nil
}

// Finish turns a raw map into the image score and, with withHeat (or when
// the score is the heat's maximum), the heat map: the map is standardised per
// position by norm (when there is one), the heat is its positive part
// blurred, and the score is the mean of its top share (or the heat's
// maximum).
func (l *Local) Finish(raw []float32, norm *PositionNorm, withHeat bool) (float64, []float32) {
	z := raw
	if norm != nil {
		z = norm.Apply(raw)
	}
	var heat []float32
	if withHeat || l.Top <= 0 {
		pos := make([]float32, len(z))
		for p, v := range z {
			pos[p] = max(v, 0)
		}
		heat = imageops.GaussianBlur(pos, HeatSize, HeatSize, l.Sigma)
	}
	if l.Top > 0 {
		s := TopMean(z, l.Top)
		if norm != nil {
			// Standardised maps can give a good part a score at or below
			// zero; the line's operating point works on log scores, so the
			// score is made positive by softplus, which ranks parts the
			// same and leaves scores above a few unchanged.
			s = softplus(s)
		}
		return s, heat
	}
	var top float32
	for _, v := range heat {
		top = max(top, v)
	}
	return float64(top), heat
}

func softplus(x float64) float64 {
	if x > 30 {
		return x
	}
	return math.Log1p(math.Exp(x))
}

// PositionNorm standardises a score map position by position with what
// good parts score there (their leave-one-out maps): places where good parts
// differ from each other anyway (a cell's corners, an edge, a marking that
// moves) stop looking like defects, and places where good parts agree count
// fully. Both maps are HeatSize x HeatSize; Scale already holds the floor.
type PositionNorm struct {
	Mean, Scale []float32
}

// Apply returns (raw - Mean) / Scale.
func (n *PositionNorm) Apply(raw []float32) []float32 {
	out := make([]float32, len(raw))
	for p, v := range raw {
		out[p] = (v - n.Mean[p]) / n.Scale[p]
	}
	return out
}

// NewPositionNorm computes the norm of the maps, leaving map skip (>= 0)
// out. floor, a share of the median deviation, is added to every deviation
// so that positions where sixteen parts happened to agree closely do not
// turn small differences into large scores.
func NewPositionNorm(maps [][]float32, skip int, floor float64) (*PositionNorm, error) {
	n := 0
	for i := range maps {
		if i != skip {
			n++
		}
	}
	if n < 2 {
		return nil, fmt.Errorf("local: position norm needs at least 2 maps, have %d", n)
	}
	size := len(maps[0])
	mean := make([]float64, size)
	for i, m := range maps {
		if len(m) != size {
			return nil, fmt.Errorf("local: position norm: map %d has %d values, not %d", i, len(m), size)
		}
		if i == skip {
			continue
		}
		for p, v := range m {
			mean[p] += float64(v)
		}
	}
	sd := make([]float64, size)
	for p := range mean {
		mean[p] /= float64(n)
	}
	for i, m := range maps {
		if i == skip {
			continue
		}
		for p, v := range m {
			d := float64(v) - mean[p]
			sd[p] += d * d
		}
	}
	for p := range sd {
		sd[p] = math.Sqrt(sd[p] / float64(n-1))
	}
	f := floor * median64(sd)
	if !(f > 0) {
		f = 1e-6
	}
	out := &PositionNorm{Mean: make([]float32, size), Scale: make([]float32, size)}
	for p := range mean {
		out.Mean[p] = float32(mean[p])
		out.Scale[p] = float32(sd[p] + f)
	}
	return out, nil
}

func median64(x []float64) float64 {
	c := slices.Clone(x)
	slices.Sort(c)
	if len(c) == 0 {
		return 0
	}
	return c[len(c)/2]
}

// Tensor names of the position norm.
const (
	TensorNormMean  = "local.norm.mean"
	TensorNormScale = "local.norm.scale"
)

// Tensors of the norm for the model file.
func (n *PositionNorm) Tensors() []model.Tensor {
	return []model.Tensor{{Name: TensorNormMean, Shape: []int{HeatSize, HeatSize}, Data: n.Mean},
		{Name: TensorNormScale, Shape: []int{HeatSize, HeatSize}, Data: n.Scale}}
}

// loadNorm reads the position norm; a model without one scores raw maps.
func loadNorm(m *model.Model) (*PositionNorm, error) {
	mt, okM := m.Tensors[TensorNormMean]
	st, okS := m.Tensors[TensorNormScale]
	if !okM && !okS {
		return nil, nil
	}
	if !okM || !okS {
		return nil, fmt.Errorf("model %s has only one of %s and %s", m.Manifest.ID, TensorNormMean, TensorNormScale)
	}
	for _, t := range []model.Tensor{mt, st} {
		if len(t.Data) != HeatSize*HeatSize {
			return nil, fmt.Errorf("model %s: tensor %s has %d values, want %d", m.Manifest.ID, t.Name, len(t.Data), HeatSize*HeatSize)
		}
	}
	for p := range st.Data {
		if !(st.Data[p] > 0) || math.IsInf(float64(st.Data[p]), 0) || math.IsNaN(float64(mt.Data[p])) || math.IsInf(float64(mt.Data[p]), 0) {
			return nil, fmt.Errorf("model %s: position norm has a bad value at %d (mean %v, scale %v)", m.Manifest.ID, p, mt.Data[p], st.Data[p])
		}
	}
	return &PositionNorm{Mean: mt.Data, Scale: st.Data}, nil
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
