package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/mat"

	"github.com/inspectd/inspectd/flow"
	ib "github.com/inspectd/inspectd/internal/blas"
	"github.com/inspectd/inspectd/model"
)

// CFlow is a normalizing flow over patch vectors conditioned on the patch's
// position (Gudovskiy et al., "CFLOW-AD", 2022; the successor of DifferNet
// by the same line of work): the flow package's affine couplings, every
// subnet reading a sinusoidal encoding of (y, x) beside its half. A patch's
// score is its negative log-likelihood, so the density learns what good
// parts look like at each place rather than anywhere.
//
// Patch vectors are first reduced by PCA fitted on the good patches and
// whitened (the flow starts as the standard normal, which whitened inputs
// already fit), which keeps training to seconds on two cores.
//
// Leave-one-out: a flow cannot forget one image, so Fit also trains Folds
// flows, each without every Folds-th good image, and Score with exclude
// uses the fold flow that never saw that image. Those flows saw a quarter
// fewer images than the final one, and leave-one-out scores run high: on
// ELPV at 16 parts the 1% threshold rejected no good test part and caught
// almost no defect (README, "Accuracy"). They stay in memory, unsaved.
type CFlow struct {
	Cfg   CFlowConfig
	mean  []float32 // dim
	proj  []float32 // dim x k: principal axes divided by their deviation
	final *flow.Flow
	folds []*flow.Flow  // only after Fit
	fold  map[int32]int // owner -> the fold flow that did not see it
	dim   int
}

// CFlowConfig is stored in the model.
type CFlowConfig struct {
	// Proj is the width the patch vectors are reduced to (PCA, whitened).
	Proj int `json:"proj"`
	// Freqs is the number of sinusoid frequencies per axis of the
	// positional condition; it has 4*Freqs values (sine and cosine of y
	// and x).
	Freqs  int     `json:"freqs"`
	Blocks int     `json:"blocks"`
	Hidden int     `json:"hidden"`
	Depth  int     `json:"depth"`
	Clamp  float64 `json:"clamp"`
	// Steps is the number of Adam steps: epochs follow from the number of
	// rows, so time stays bounded whatever the number of good parts.
	Steps int     `json:"steps"`
	Batch int     `json:"batch"`
	LR    float64 `json:"lr"`
	// Folds is the number of fold flows trained for leave-one-out scores
	// (0: none; leave-one-out scores are then the final flow's own, which
	// saw the image).
	Folds int   `json:"folds"`
	Seed  int64 `json:"seed"`
	// Dim and K (the reduced width, Proj or less) are set by Fit.
	Dim int `json:"dim,omitempty"`
	K   int `json:"k,omitempty"`
}

// Method name of the conditional flow in model files.
const MethodCFlow = "cflow"

const (
	tensorCFlowMean = "cflow.mean"
	tensorCFlowProj = "cflow.proj"
	cflowFlowPrefix = "cflow.flow."
)

// DefaultCFlow is the conditional flow's default configuration.
var DefaultCFlow = CFlowConfig{Proj: 64, Freqs: 6, Blocks: 8, Hidden: 128, Depth: 1, Clamp: 1.9,
	Steps: 400, Batch: 256, LR: 1e-3, Folds: 4, Seed: 1}

// Bounds of a stored configuration: a model file is hostile input, and
// these keep the flow it declares small enough to build before its tensors
// are checked.
const (
	maxCFlowProj   = 1024
	maxCFlowFreqs  = 16
	maxCFlowBlocks = 32
	maxCFlowHidden = 1024
	maxCFlowDepth  = 4
	maxCFlowFolds  = 16
)

func init() {
	Register(MethodCFlow, func(raw json.RawMessage) (Density, error) {
		c := &CFlow{Cfg: DefaultCFlow}
		if err := decodeConfig(raw, MethodCFlow, &c.Cfg); err != nil {
			return nil, err
		}
		return c, nil
	})
}

func (c CFlowConfig) validate() error {
	bad := func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }
	switch {
	case c.Proj < 2 || c.Proj > maxCFlowProj:
		return fmt.Errorf("cflow: proj %d outside 2..%d", c.Proj, maxCFlowProj)
	case c.Freqs < 0 || c.Freqs > maxCFlowFreqs:
		return fmt.Errorf("cflow: freqs %d outside 0..%d", c.Freqs, maxCFlowFreqs)
	case c.Blocks < 1 || c.Blocks > maxCFlowBlocks:
		return fmt.Errorf("cflow: blocks %d outside 1..%d", c.Blocks, maxCFlowBlocks)
	case c.Hidden < 1 || c.Hidden > maxCFlowHidden:
		return fmt.Errorf("cflow: hidden %d outside 1..%d", c.Hidden, maxCFlowHidden)
	case c.Depth < 1 || c.Depth > maxCFlowDepth:
		return fmt.Errorf("cflow: depth %d outside 1..%d", c.Depth, maxCFlowDepth)
	case bad(c.Clamp) || c.Clamp <= 0 || c.Clamp > 10:
		return fmt.Errorf("cflow: clamp %v outside (0, 10]", c.Clamp)
	case c.Steps < 1 || c.Steps > 1e6:
		return fmt.Errorf("cflow: steps %d outside 1..1e6", c.Steps)
	case c.Batch < 1 || c.Batch > 1<<16:
		return fmt.Errorf("cflow: batch %d outside 1..65536", c.Batch)
	case bad(c.LR) || c.LR <= 0 || c.LR >= 1:
		return fmt.Errorf("cflow: learning rate %v outside (0, 1)", c.LR)
	case c.Folds != 0 && (c.Folds < 2 || c.Folds > maxCFlowFolds):
		return fmt.Errorf("cflow: folds %d: 0, or 2..%d", c.Folds, maxCFlowFolds)
	case c.Dim < 0 || c.Dim > 1<<16:
		return fmt.Errorf("cflow: dim %d outside 0..65536", c.Dim)
	case c.K < 0 || c.K > c.Proj || (c.Dim > 0 && c.K > c.Dim):
		return fmt.Errorf("cflow: reduced width %d outside 0..%d (proj) and 0..dim %d", c.K, c.Proj, c.Dim)
	}
	return nil
}

func (c CFlowConfig) flowConfig(k int) flow.Config {
	return flow.Config{Dim: k, Blocks: c.Blocks, Hidden: c.Hidden, Depth: c.Depth, Clamp: c.Clamp, Cond: 4 * c.Freqs, Seed: c.Seed}
}

// Config implements Density.
func (c *CFlow) Config() json.RawMessage {
	cfg := c.Cfg
	if c.final != nil {
		cfg.Dim, cfg.K = c.dim, c.final.Dim()
	}
	b, _ := json.Marshal(cfg)
	return b
}

var errNoPositions = errors.New("cflow conditions on each patch's position: fit and score it through FitAt and ScoreAt")

// Fit implements Density; the conditional flow needs positions (FitAt).
func (c *CFlow) Fit(context.Context, []float32, int, int, []int32) error { return errNoPositions }

// Score implements Density; the conditional flow needs positions (ScoreAt).
func (c *CFlow) Score(context.Context, []float32, int, int32) ([]float32, error) {
	return nil, errNoPositions
}

// FitAt implements Positional: PCA on the good patches, then the final flow
// on every row and, for leave-one-out, one flow per fold of images.
func (c *CFlow) FitAt(ctx context.Context, x []float32, n, dim int, owner []int32, at []Position) error {
	if n < 2 || dim < 2 || len(x) != n*dim || len(owner) != n || len(at) != n {
		return fmt.Errorf("cflow: %d values, %d owners and %d positions for %d rows of %d (need at least 2 rows of 2)", len(x), len(owner), len(at), n, dim)
	}
	if i := firstBad(x); i >= 0 {
		return fmt.Errorf("cflow: patch value %d (row %d) is %v", i, i/dim, x[i])
	}
	ib.Use()
	k := min(c.Cfg.Proj, dim)
	mean, proj, err := pca(x, n, dim, k)
	if err != nil {
		return err
	}
	c.mean, c.proj, c.dim = mean, proj, dim
	r := c.reduce(x, n)
	cond := encodePositions(at, c.Cfg.Freqs)
	c.final, c.folds, c.fold = nil, nil, nil
	owners := slices.Compact(slices.Sorted(slices.Values(owner)))
	K := min(c.Cfg.Folds, len(owners))
	if K < 2 {
		K = 0
	} else {
		c.fold = make(map[int32]int, len(owners))
		for i, o := range owners {
			c.fold[o] = i % K
		}
	}
	// One flow at a time: their products are small, and OpenBLAS threads
	// of concurrent calls contend (5 flows side by side took 6x longer).
	flows := make([]*flow.Flow, K+1)
	for f := range K + 1 {
		var err error
		if f == K {
			flows[f], err = c.train(ctx, r, cond, n, k, "all")
		} else {
			fr, fc, m := c.foldRows(r, cond, owner, n, k, f)
			flows[f], err = c.train(ctx, fr, fc, m, k, fmt.Sprintf("fold %d/%d", f+1, K))
		}
		if err != nil {
			return err
		}
	}
	c.final, c.folds = flows[K], flows[:K]
	return nil
}

// foldRows are the reduced rows and conditions of every image not in fold f.
func (c *CFlow) foldRows(r, cond []float32, owner []int32, n, k, f int) ([]float32, []float32, int) {
	C := 4 * c.Cfg.Freqs
	var fr, fc []float32
	m := 0
	for i := range n {
		if c.fold[owner[i]] != f {
			fr = append(fr, r[i*k:(i+1)*k]...)
			fc = append(fc, cond[i*C:(i+1)*C]...)
			m++
		}
	}
	return fr, fc, m
}

func (c *CFlow) train(ctx context.Context, r, cond []float32, n, k int, what string) (*flow.Flow, error) {
	fl, err := flow.New(c.Cfg.flowConfig(k))
	if err != nil {
		return nil, fmt.Errorf("cflow: %w", err)
	}
	batch := min(c.Cfg.Batch, n)
	epochs := max(1, (c.Cfg.Steps*batch+n-1)/n)
	st, err := fl.Train(ctx, r, n, flow.TrainConfig{
		Adam:      flow.AdamConfig{LR: c.Cfg.LR, Beta1: 0.9, Beta2: 0.999, Eps: 1e-6, WeightDecay: 1e-5},
		MaxEpochs: epochs, Batch: batch, Seed: c.Cfg.Seed, Cond: cond,
	})
	if err != nil {
		return nil, fmt.Errorf("cflow: training on %s: %w", what, err)
	}
	slog.Debug("cflow trained", "on", what, "rows", n, "epochs", st.Epochs, "steps", st.Steps, "first_loss", st.FirstLoss, "final_loss", st.FinalLoss)
	return fl, nil
}

// reduce centres x and maps it onto the whitened principal axes.
func (c *CFlow) reduce(x []float32, n int) []float32 {
	k := len(c.proj) / c.dim
	xc := make([]float32, len(x))
	for i := range n {
		row, out := x[i*c.dim:(i+1)*c.dim], xc[i*c.dim:(i+1)*c.dim]
		for j, v := range row {
			out[j] = v - c.mean[j]
		}
	}
	r := make([]float32, n*k)
	blas32.Implementation().Sgemm(blas.NoTrans, blas.NoTrans, n, k, c.dim, 1, xc, c.dim, c.proj, k, 0, r, k)
	return r
}

// encodePositions is CFlow's sinusoidal positional encoding: for each axis
// and frequency 2^f*pi, the sine and cosine of the position, so that the
// subnets tell near cells apart at every scale from the whole part down to
// a few cells.
func encodePositions(at []Position, freqs int) []float32 {
	C := 4 * freqs
	out := make([]float32, len(at)*C)
	for i, p := range at {
		row := out[i*C : (i+1)*C]
		for f := range freqs {
			w := math.Pi * float64(int(1)<<f)
			y, x := float64(p.Y)*w, float64(p.X)*w
			row[4*f], row[4*f+1] = float32(math.Sin(y)), float32(math.Cos(y))
			row[4*f+2], row[4*f+3] = float32(math.Sin(x)), float32(math.Cos(x))
		}
	}
	return out
}

// pcaRows bounds the rows the covariance is computed from.
const pcaRows = 1 << 15

// pca returns the mean of the rows and the dim x k matrix of the k leading
// principal axes, each divided by its standard deviation (plus a small
// share of the largest, so that a flat direction is not blown up).
func pca(x []float32, n, dim, k int) ([]float32, []float32, error) {
	step := max(1, n/pcaRows)
	m := (n + step - 1) / step
	mean := make([]float64, dim)
	for i := 0; i < n; i += step {
		for j, v := range x[i*dim : (i+1)*dim] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(m)
	}
	xc := make([]float32, m*dim)
	for r, i := 0, 0; i < n; r, i = r+1, i+step {
		for j, v := range x[i*dim : (i+1)*dim] {
			xc[r*dim+j] = v - float32(mean[j])
		}
	}
	cov32 := make([]float32, dim*dim)
	blas32.Implementation().Sgemm(blas.Trans, blas.NoTrans, dim, dim, m, 1/float32(m), xc, dim, xc, dim, 0, cov32, dim)
	cov := mat.NewSymDense(dim, nil)
	for i := range dim {
		for j := i; j < dim; j++ {
			cov.SetSym(i, j, float64(cov32[i*dim+j]))
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(cov, true) {
		return nil, nil, errors.New("cflow: eigendecomposition of the patch covariance failed")
	}
	vals := eig.Values(nil) // ascending
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	top := max(vals[dim-1], 0)
	if !(top > 0) {
		return nil, nil, errors.New("cflow: the good patches do not vary (zero covariance)")
	}
	proj := make([]float32, dim*k)
	for c := range k {
		col := dim - 1 - c
		s := 1 / math.Sqrt(max(vals[col], 0)+1e-4*top)
		for i := range dim {
			proj[i*k+c] = float32(vecs.At(i, col) * s)
		}
	}
	out := make([]float32, dim)
	for j, v := range mean {
		out[j] = float32(v)
	}
	return out, proj, nil
}

// ScoreAt implements Positional: each row's negative log-likelihood per
// reduced dimension under the flow, made positive by softplus and then
// compressed by log1p. The compression keeps the order of patches but not
// the flow's tail: off-manifold patches get NLLs growing with the square of
// their distance, and one good part's odd corner then dominated its
// leave-one-out score (elpv_mono, 16 parts: image AUROC 0.864 raw, 0.866
// square root, 0.868 log; largest leave-one-out good score 231, 42, 12).
func (c *CFlow) ScoreAt(ctx context.Context, x []float32, n int, at []Position, exclude int32) ([]float32, error) {
	if c.final == nil {
		return nil, errors.New("cflow: not fitted")
	}
	if n < 0 || len(x) != n*c.dim || len(at) != n {
		return nil, fmt.Errorf("cflow: %d values and %d positions for %d rows of %d", len(x), len(at), n, c.dim)
	}
	f := c.final
	// With folds 0 leave-one-out is approximated by the final flow, which
	// saw the image: cheaper by the fold flows' training, biased low.
	if exclude >= 0 && c.Cfg.Folds > 0 {
		if c.fold == nil {
			return nil, errors.New("cflow: leave-one-out needs the fold flows (only after Fit)")
		}
		// An image the density never saw has nothing to leave out.
		if k, ok := c.fold[exclude]; ok {
			f = c.folds[k]
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n == 0 {
		return []float32{}, nil
	}
	r := c.reduce(x, n)
	z, ld := f.ForwardCond(r, encodePositions(at, c.Cfg.Freqs), n)
	k := f.Dim()
	out := make([]float32, n)
	half := 0.5 * math.Log(2*math.Pi)
	for i := range out {
		var ss float64
		for _, v := range z[i*k : (i+1)*k] {
			ss += float64(v) * float64(v)
		}
		nll := (0.5*ss-float64(ld[i]))/float64(k) + half
		if nll < 30 {
			nll = math.Log1p(math.Exp(nll))
		}
		out[i] = float32(math.Log1p(nll))
	}
	return out, nil
}

// Tensors implements Density: the reduction and the final flow (the fold
// flows serve calibration only).
func (c *CFlow) Tensors() []model.Tensor {
	if c.final == nil {
		return nil
	}
	k := c.final.Dim()
	ts := []model.Tensor{{Name: tensorCFlowMean, Shape: []int{c.dim}, Data: c.mean},
		{Name: tensorCFlowProj, Shape: []int{c.dim, k}, Data: c.proj}}
	for _, p := range c.final.Params() {
		ts = append(ts, model.Tensor{Name: cflowFlowPrefix + p.Name, Shape: p.Shape, Data: p.Data})
	}
	return ts
}

// Load implements Density. Every tensor's shape is checked against the
// stored configuration, and the flow is built only once the file is known
// to hold its parameters.
func (c *CFlow) Load(m *model.Model, dim int) error {
	id := m.Manifest.ID
	cfg := c.Cfg
	if cfg.K < 2 || cfg.Dim != dim {
		return fmt.Errorf("model %s: cflow configuration says %d features reduced to %d; the grid gives %d", id, cfg.Dim, cfg.K, dim)
	}
	k := cfg.K
	mean, err := exactTensor(m, tensorCFlowMean, []int{dim})
	if err != nil {
		return err
	}
	proj, err := exactTensor(m, tensorCFlowProj, []int{dim, k})
	if err != nil {
		return err
	}
	fcfg := cfg.flowConfig(k)
	if need, have := cflowParams(fcfg), cflowValues(m); need > have {
		return fmt.Errorf("model %s: the cflow configuration needs %d flow parameters; the file holds %d", id, need, have)
	}
	fl, err := flow.New(fcfg)
	if err != nil {
		return fmt.Errorf("model %s: %w", id, err)
	}
	for _, p := range fl.Params() {
		t, err := exactTensor(m, cflowFlowPrefix+p.Name, p.Shape)
		if err != nil {
			return err
		}
		copy(p.Data, t.Data)
	}
	c.mean, c.proj, c.dim, c.final, c.folds, c.fold = mean.Data, proj.Data, dim, fl, nil, nil
	return nil
}

// cflowParams counts what flow.New allocates for cfg: per block two
// subnets, the first layer reading the half and the condition.
func cflowParams(cfg flow.Config) int {
	n1, n2, h := cfg.Dim/2, cfg.Dim-cfg.Dim/2, cfg.Hidden
	subnet := func(in, out int) int { return (in+cfg.Cond)*h + h + (cfg.Depth-1)*(h*h+h) + h*out + out }
	return cfg.Blocks * (subnet(n2, 2*n1) + subnet(n1, 2*n2))
}

func cflowValues(m *model.Model) int {
	n := 0
	for name, t := range m.Tensors {
		if strings.HasPrefix(name, cflowFlowPrefix) {
			n += len(t.Data)
		}
	}
	return n
}

func firstBad(x []float32) int {
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return i
		}
	}
	return -1
}
