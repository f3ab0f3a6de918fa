// Package flow is DifferNet's normalizing flow on pooled feature vectors: a
// stack of affine coupling blocks with soft-clamped scales, trained by
// maximum likelihood under a standard normal latent. A feature vector's
// anomaly score is the mean of its squared latent coordinates.
//
// Batches are row-major float32, n rows of Dim values. Forward, Inverse,
// Loss, Score and ScoreGrad only read the weights and may run concurrently;
// LossGrad, ZeroGrad, Adam steps and Train change state and must not overlap
// with anything else on the same Flow. Shape mismatches (len(x) != n*Dim) are
// programming errors and panic, as in gonum.
package flow

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/inspectd/inspectd/internal/blas"
)

// DefaultClamp is the soft clamp alpha of the paper.
const DefaultClamp = 3

// ErrConfig is wrapped by every Config validation error.
var ErrConfig = errors.New("invalid flow config")

// Config fixes the architecture; with the weights it determines the flow.
type Config struct {
	Dim    int     // feature vector length, at least 2
	Blocks int     // coupling blocks (paper: 8)
	Hidden int     // width of each subnet's hidden layers
	Depth  int     // hidden layers per subnet, at least 1
	Clamp  float64 // soft clamp alpha; 0 means DefaultClamp
	Seed   int64   // permutations and initial weights
	// Cond is the width of a condition vector given with every row and
	// appended to each subnet's input (a conditional flow, as CFlow's
	// positional encoding); 0 for DifferNet's unconditional flow.
	Cond int
}

// MaxCond bounds Config.Cond: a condition wider than this is a mistake, not
// an encoding.
const MaxCond = 4096

// Validate reports the first problem with c.
func (c Config) Validate() error {
	switch {
	case c.Dim < 2:
		return fmt.Errorf("%w: Dim %d, need at least 2 to split into halves", ErrConfig, c.Dim)
	case c.Blocks < 1:
		return fmt.Errorf("%w: Blocks %d, need at least 1", ErrConfig, c.Blocks)
	case c.Hidden < 1:
		return fmt.Errorf("%w: Hidden %d, need at least 1", ErrConfig, c.Hidden)
	case c.Depth < 1:
		return fmt.Errorf("%w: Depth %d, need at least 1 hidden layer", ErrConfig, c.Depth)
	case c.Cond < 0 || c.Cond > MaxCond:
		return fmt.Errorf("%w: Cond %d, need 0..%d", ErrConfig, c.Cond, MaxCond)
	case c.Clamp < 0 || math.IsNaN(c.Clamp) || math.IsInf(c.Clamp, 0):
		return fmt.Errorf("%w: Clamp %v, need a positive finite value (0 for the default %d)", ErrConfig, c.Clamp, DefaultClamp)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Clamp == 0 {
		c.Clamp = DefaultClamp
	}
	return c
}

// Param is one named parameter tensor. Data and Grad alias the flow's live
// storage: writing Data changes the flow, which is how a loader restores
// saved weights into New(cfg).
type Param struct {
	Name  string
	Shape []int
	Data  []float32
	Grad  []float32
}

// block is one coupling block. st2 maps x2 to (s2, t2) for x1; st1 maps y1 to
// (s1, t1) for x2. perm[j] is the input coordinate that lands at j.
type block struct {
	perm     []int
	st2, st1 mlp
}

// Flow is a DifferNet normalizing flow.
type Flow struct {
	cfg    Config
	n1, n2 int // half sizes; n2 gets the extra coordinate when Dim is odd
	alpha  float32
	blocks []block
	params []Param
	pool   sync.Pool // *workspace
}

// New builds a flow with seeded random permutations, He-initialised hidden
// layers and zero output layers, so that it starts as the identity and
// training begins from the standard normal fit.
func New(cfg Config) (*Flow, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	blas.Use()
	cfg = cfg.withDefaults()
	f := &Flow{cfg: cfg, n1: cfg.Dim / 2, n2: cfg.Dim - cfg.Dim/2, alpha: float32(cfg.Clamp)}
	f.blocks = make([]block, cfg.Blocks)
	for b := range f.blocks {
		bl := &f.blocks[b]
		bl.perm = newRNG(cfg.Seed, uint64(3*b+1)).perm(cfg.Dim)
		bl.st2 = f.newMLP(f.n2, 2*f.n1, newRNG(cfg.Seed, uint64(3*b+2)))
		bl.st1 = f.newMLP(f.n1, 2*f.n2, newRNG(cfg.Seed, uint64(3*b+3)))
		for _, net := range []struct {
			name string
			m    *mlp
		}{{"st2", &bl.st2}, {"st1", &bl.st1}} {
			for l := range net.m.layers {
				L := &net.m.layers[l]
				prefix := fmt.Sprintf("block%d.%s.layer%d.", b, net.name, l)
				f.params = append(f.params,
					Param{Name: prefix + "weight", Shape: []int{L.in, L.out}, Data: L.w, Grad: L.gw},
					Param{Name: prefix + "bias", Shape: []int{L.out}, Data: L.b, Grad: L.gb})
			}
		}
	}
	return f, nil
}

func (f *Flow) newMLP(in, out int, r *rng) mlp {
	m := mlp{in: in, cond: f.cfg.Cond, out: out}
	width := in + f.cfg.Cond
	for l := 0; l <= f.cfg.Depth; l++ {
		o := f.cfg.Hidden
		if l == f.cfg.Depth {
			o = out
		}
		L := dense{in: width, out: o,
			w: make([]float32, width*o), b: make([]float32, o),
			gw: make([]float32, width*o), gb: make([]float32, o)}
		if l < f.cfg.Depth {
			std := math.Sqrt(2 / float64(width))
			for i := range L.w {
				L.w[i] = float32(std * r.norm())
			}
		}
		m.layers = append(m.layers, L)
		width = o
	}
	return m
}

// Config returns the architecture, with defaults filled in.
func (f *Flow) Config() Config { return f.cfg }

// Dim is the feature vector length.
func (f *Flow) Dim() int { return f.cfg.Dim }

// Params lists the parameters in a stable order (block, subnet st2 then st1,
// layer, weight then bias). Weights have shape [in, out]: y = x·W + b; a
// first layer's in is the half's width plus Cond, the condition's rows last.
func (f *Flow) Params() []Param { return f.params }

// NumParams is the total number of scalar parameters.
func (f *Flow) NumParams() int {
	n := 0
	for _, p := range f.params {
		n += len(p.Data)
	}
	return n
}

// ZeroGrad clears the gradients LossGrad accumulates.
func (f *Flow) ZeroGrad() {
	for _, p := range f.params {
		clear(p.Grad)
	}
}

func (f *Flow) checkBatch(what string, x []float32, n int) {
	if n < 0 || len(x) != n*f.cfg.Dim {
		panic(fmt.Sprintf("flow: %s: %d values for %d rows of dim %d", what, len(x), n, f.cfg.Dim))
	}
}

// checkCond panics unless c holds one condition per row (none when the flow
// is unconditional).
func (f *Flow) checkCond(what string, c []float32, n int) {
	if len(c) != n*f.cfg.Cond {
		panic(fmt.Sprintf("flow: %s: %d condition values for %d rows of width %d", what, len(c), n, f.cfg.Cond))
	}
}

// clamp is the soft clamp c(s) = alpha * 2/pi * atan(s/alpha); dclamp is its
// derivative.
func clamp(s, alpha float32) float32 {
	return alpha * (2 / math.Pi) * float32(math.Atan(float64(s/alpha)))
}

func dclamp(s, alpha float32) float32 {
	u := s / alpha
	return (2 / math.Pi) / (1 + u*u)
}

// exp32 is a float32 exp (Cephes' expf: range reduction by ln 2 and a
// degree-6 polynomial, relative error about 1e-7). math.Exp in float64 was a
// fifth of ScoreGrad's time; the coupling only ever needs float32.
func exp32(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		c1    = 0.693359375
		c2    = -2.12194440e-4
	)
	if x > 88 {
		return float32(math.Inf(1))
	}
	if x < -87 {
		return 0
	}
	k := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - k*c1 - k*c2
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	p = p*r*r + r + 1
	return p * math.Float32frombits(uint32(int32(k)+127)<<23)
}
