// Package pipeline inspects one image with a calibrated model: region of
// interest, the T test transformations, backbone features, standardisation,
// the density's score, the decision threshold, and the heatmap.
package pipeline

import (
	"context"
	"fmt"
	"image"
	"math"
	"time"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/engine"
	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/local"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/pooled"
	"github.com/inspectd/inspectd/transform"
)

// Tensor names in the model file of the good parts' feature statistics,
// with which pooled vectors are standardised before the density sees them.
const (
	TensorFeatureMean = "features.mean"
	TensorFeatureStd  = "features.std"
)

// HeatSize is the square working resolution of heatmaps before they are
// resized to the part: fine enough for the coarsest backbone maps (stride 32),
// cheap enough to average over many transformations.
const HeatSize = 224

// Result of one inspection.
type Result struct {
	Score     float64
	Threshold float64
	Defect    bool
	Heat      []float32 // HeatSize x HeatSize, nil unless asked; >= 0
	Elapsed   time.Duration
	// OffShape says why the part's shape lies outside the good parts'
	// (empty when it does not): it is scored all the same, as the score
	// is all a wrong crop and a real part have in common.
	OffShape string
}

// Inspector scores images with one model. Safe for concurrent use.
type Inspector struct {
	man     model.Manifest
	ex      *features.Extractor
	dens    pooled.Density // nil for a patch method
	mu, sd  []float32
	angles  []float64
	roi     image.Rectangle
	thresh  float64
	heatSig float64
	base    [][][]float32 // good parts' mean maps [scale][tap], C x H x W; nil: pooled mean
	loc     *Local        // patch-level method; nil: a density over pooled vectors
}

// NewExtractor opens the feature extractor a model needs on a runtime that
// was opened on the model's backbone with the model's taps.
func NewExtractor(m *model.Model, rt engine.Runtime, maxBatch int) (*features.Extractor, error) {
	ex, err := features.New(rt, m.Manifest.Features, maxBatch)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Manifest.ID, err)
	}
	return ex, nil
}

// NewInspector binds a loaded model to a feature extractor. backboneSHA is the
// sha256 of the backbone file in use; a model made with another backbone is
// refused, naming both checksums.
func NewInspector(m *model.Model, ex *features.Extractor, backboneSHA string) (*Inspector, error) {
	man := m.Manifest
	if backboneSHA != man.Backbone.SHA256 {
		return nil, fmt.Errorf("model %s was calibrated with backbone %s (sha256 %s) but the backbone in use has sha256 %s: recalibrate or point INSPECTD_BACKBONE at the right file",
			man.ID, man.Backbone.File, man.Backbone.SHA256, backboneSHA)
	}
	in := &Inspector{man: man, ex: ex, angles: man.Transforms.TestAngles(man.TestTransforms),
		thresh: man.Threshold.Value, heatSig: man.HeatmapSigma}
	if man.ROI != "" {
		var err error
		if in.roi, err = imageops.ParseROI(man.ROI); err != nil {
			return nil, fmt.Errorf("model %s: %w", man.ID, err)
		}
	}
	if local.Is(string(man.Method)) {
		var err error
		if in.loc, err = loadLocal(m, ex); err != nil {
			return nil, err
		}
		return in, nil
	}
	dens, err := pooled.Load(m, ex.Dim())
	if err != nil {
		return nil, err
	}
	mu, err := m.Tensor(TensorFeatureMean)
	if err != nil {
		return nil, err
	}
	sd, err := m.Tensor(TensorFeatureStd)
	if err != nil {
		return nil, err
	}
	if len(mu.Data) != ex.Dim() || len(sd.Data) != ex.Dim() {
		return nil, fmt.Errorf("model %s: feature statistics have %d values; the backbone gives %d", man.ID, len(mu.Data), ex.Dim())
	}
	in.dens, in.mu, in.sd = dens, mu.Data, sd.Data
	if in.base, err = loadBaselines(m, ex); err != nil {
		return nil, err
	}
	return in, nil
}

// Manifest of the model in use.
func (in *Inspector) Manifest() model.Manifest { return in.man }

// SetThreshold overrides the calibrated threshold (operators may tune it).
func (in *Inspector) SetThreshold(t float64) { in.thresh = t }

// SetTransforms overrides T, the number of test transformations.
func (in *Inspector) SetTransforms(t int) { in.angles = in.man.Transforms.TestAngles(t) }

// Angles are the test rotations in use, in degrees.
func (in *Inspector) Angles() []float64 { return append([]float64(nil), in.angles...) }

// Local reports whether the model scores patches (no pooled vectors: eval
// inspects each image whole instead of using Vectors and ScoreVectors).
func (in *Inspector) Local() bool { return in.loc != nil }

// Vectors returns the raw (unstandardised) pooled feature vectors of img at
// the given rotations, one row per angle. With ScoreVectors it lets a caller
// score one extraction at several T or with several models (eval does).
func (in *Inspector) Vectors(ctx context.Context, img gocv.Mat, angles []float64) ([]float32, error) {
	part, err := in.Part(img)
	if err != nil {
		return nil, err
	}
	defer part.Close()
	views := make([]gocv.Mat, len(angles))
	for i, a := range angles {
		views[i] = transform.Apply(in.man.Transforms, part, a, nil)
	}
	defer func() {
		for _, v := range views {
			v.Close()
		}
	}()
	vecs, _, err := in.ex.Extract(ctx, views, false)
	return vecs, err
}

// ScoreVectors is the image score of n raw vectors from Vectors: the mean of
// the density's scores after standardisation. raw is left unchanged.
func (in *Inspector) ScoreVectors(raw []float32, n int) (float64, error) {
	x := append([]float32(nil), raw...)
	Standardize(x, in.mu, in.sd)
	var s float64
	for _, v := range in.dens.Score(x, n) {
		s += float64(v)
	}
	s /= float64(n)
	if math.IsNaN(s) {
		return 0, fmt.Errorf("model %s gave a NaN score", in.man.ID)
	}
	return s, nil
}

// Dim is the length of one feature vector.
func (in *Inspector) Dim() int { return in.ex.Dim() }

// Part crops the region of interest; the caller closes the result.
func (in *Inspector) Part(img gocv.Mat) (gocv.Mat, error) {
	if in.roi.Empty() {
		return img.Clone(), nil
	}
	return imageops.Crop(img, in.roi)
}

// Inspect scores one image (8UC3, full frame; the ROI is applied here).
func (in *Inspector) Inspect(ctx context.Context, img gocv.Mat, withHeat bool) (Result, error) {
	start := time.Now()
	part, err := in.Part(img)
	if err != nil {
		return Result{}, err
	}
	defer part.Close()
	offShape := in.man.Training.Shape.OffShape(part.Cols(), part.Rows())
	if in.loc != nil {
		s, heat, err := in.loc.Inspect(ctx, in.ex, part, in.angles, withHeat)
		if err != nil {
			return Result{}, err
		}
		res := Result{Score: s, Threshold: in.thresh, Defect: s > in.thresh, OffShape: offShape}
		if withHeat {
			res.Heat = heat
		}
		res.Elapsed = time.Since(start)
		return res, nil
	}
	views := make([]gocv.Mat, len(in.angles))
	for i, a := range in.angles {
		views[i] = transform.Apply(in.man.Transforms, part, a, nil)
	}
	defer func() {
		for _, v := range views {
			v.Close()
		}
	}()
	vecs, maps, err := in.ex.Extract(ctx, views, withHeat)
	if err != nil {
		return Result{}, err
	}
	Standardize(vecs, in.mu, in.sd)
	n := len(views)
	var scores, dx []float32
	if withHeat {
		scores, dx = in.dens.ScoreGrad(vecs, n)
	} else {
		scores = in.dens.Score(vecs, n)
	}
	var s float64
	for _, v := range scores {
		s += float64(v)
	}
	res := Result{Score: s / float64(n), Threshold: in.thresh, OffShape: offShape}
	if math.IsNaN(res.Score) {
		return Result{}, fmt.Errorf("model %s gave a NaN score", in.man.ID)
	}
	res.Defect = res.Score > in.thresh
	if withHeat {
		res.Heat = in.heatmap(dx, maps)
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// heatmap attributes the score to positions: for each transformation and
// backbone map, the score's gradient with respect to the pooled vector (in
// raw feature units) dotted with each position's deviation from the good
// parts' mean at that position (see baseline.go) — a first-order Taylor term
// around a typical good part, so a position that looks as good parts look
// there contributes nothing whether its activation is high or low. Maps are
// resized, un-rotated, averaged and blurred.
func (in *Inspector) heatmap(dx []float32, maps [][]features.Map) []float32 {
	dim := in.ex.Dim()
	acc := make([]float32, HeatSize*HeatSize)
	// What the good parts' mean contributes lies in the part's frame, not the
	// view's, so it is summed over views per map and resized once.
	refs := map[[2]int]*features.Map{}
	count := 0
	for i, a := range in.angles {
		g := dx[i*dim : (i+1)*dim]
		for _, m := range maps[i] {
			off := in.ex.Offset(m.Scale, m.Tap)
			hw := m.H * m.W
			key := [2]int{m.Scale, m.Tap}
			ref := refs[key]
			if ref == nil {
				ref = &features.Map{H: m.H, W: m.W, Data: make([]float32, hw)}
				refs[key] = ref
			}
			var base []float32
			if in.base != nil {
				base = in.base[m.Scale][m.Tap]
			}
			if len(base) != len(m.Data) || ref.H != m.H || ref.W != m.W {
				base = nil // the view's map has another size: pooled mean
			}
			view := make([]float32, hw)
			for c := 0; c < m.C; c++ {
				gc := g[off+c] / in.sd[off+c]
				for p, v := range m.Data[c*hw : (c+1)*hw] {
					view[p] += gc * v
				}
				if base == nil {
					mc := gc * in.mu[off+c]
					for p := range view {
						view[p] -= mc
					}
					continue
				}
				for p, v := range base[c*hw : (c+1)*hw] {
					ref.Data[p] += gc * v
				}
			}
			big := imageops.ResizeMap(view, m.H, m.W, HeatSize, HeatSize)
			if a != 0 {
				big = imageops.RotateMap(big, HeatSize, HeatSize, -a)
			}
			for p, v := range big {
				acc[p] += v
			}
			count++
		}
	}
	for _, ref := range refs {
		big := imageops.ResizeMap(ref.Data, ref.H, ref.W, HeatSize, HeatSize)
		for p, v := range big {
			acc[p] -= v
		}
	}
	for p := range acc {
		acc[p] = max(acc[p]/float32(count), 0)
	}
	return imageops.GaussianBlur(acc, HeatSize, HeatSize, in.heatSig)
}

// Overlay draws the heatmap over the part (ROI) of img; the caller closes it.
func (in *Inspector) Overlay(img gocv.Mat, heat []float32) (gocv.Mat, error) {
	part, err := in.Part(img)
	if err != nil {
		return gocv.Mat{}, err
	}
	defer part.Close()
	// Heat up to the good parts' level stays cold; above it the scale runs
	// to this part's own maximum, so a defect's hot spot stands out instead
	// of the whole part saturating, while a good part stays blue.
	lo := float32(in.man.HeatmapGood)
	hi := 2 * lo
	for _, v := range heat {
		hi = max(hi, v)
	}
	return imageops.Overlay(part, heat, HeatSize, HeatSize, lo, hi), nil
}

// Standardize maps raw features to (x - mu) / sd in place, row by row.
func Standardize(x, mu, sd []float32) {
	d := len(mu)
	for i := range x {
		j := i % d
		x[i] = (x[i] - mu[j]) / sd[j]
	}
}

// FeatureStats returns the per-dimension mean and a floored standard
// deviation of n x d vectors. The floor (a small fraction of the mean
// variance) keeps channels that barely vary on good parts (dead ReLUs) from
// turning rounding noise into huge standardised values.
func FeatureStats(x []float32, n, d int) (mu, sd []float32) {
	mu = make([]float32, d)
	sd = make([]float32, d)
	m := make([]float64, d)
	v := make([]float64, d)
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			m[j] += float64(x[i*d+j])
		}
	}
	for j := range m {
		m[j] /= float64(n)
	}
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			e := float64(x[i*d+j]) - m[j]
			v[j] += e * e
		}
	}
	var mean float64
	for j := range v {
		v[j] /= float64(max(n-1, 1))
		mean += v[j]
	}
	mean /= float64(d)
	floor := 1e-2*mean + 1e-12
	for j := range v {
		mu[j] = float32(m[j])
		sd[j] = float32(math.Sqrt(v[j] + floor))
	}
	return mu, sd
}
