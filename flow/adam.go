package flow

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
)

// AdamConfig configures Adam. WeightDecay is an L2 penalty added to the
// gradient, as torch.optim.Adam (and so the paper) does; set Decoupled for
// AdamW-style decay applied to the weights directly.
type AdamConfig struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
	Decoupled                          bool
}

// PaperAdam is the DifferNet paper's optimiser setting.
var PaperAdam = AdamConfig{LR: 2e-4, Beta1: 0.8, Beta2: 0.8, Eps: 1e-4, WeightDecay: 1e-5}

// Validate reports the first unusable setting.
func (c AdamConfig) Validate() error {
	bad := func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }
	switch {
	case bad(c.LR) || c.LR <= 0:
		return fmt.Errorf("adam: LR %v, need > 0", c.LR)
	case bad(c.Beta1) || c.Beta1 < 0 || c.Beta1 >= 1:
		return fmt.Errorf("adam: Beta1 %v, need in [0, 1)", c.Beta1)
	case bad(c.Beta2) || c.Beta2 < 0 || c.Beta2 >= 1:
		return fmt.Errorf("adam: Beta2 %v, need in [0, 1)", c.Beta2)
	case bad(c.Eps) || c.Eps <= 0:
		return fmt.Errorf("adam: Eps %v, need > 0", c.Eps)
	case bad(c.WeightDecay) || c.WeightDecay < 0:
		return fmt.Errorf("adam: WeightDecay %v, need >= 0", c.WeightDecay)
	}
	return nil
}

// Adam updates a set of parameters from their accumulated gradients.
type Adam struct {
	cfg    AdamConfig
	params []Param
	m, v   [][]float32
	t      int
}

// NewAdam prepares Adam state (zero moments) for params.
func NewAdam(params []Param, cfg AdamConfig) (*Adam, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(params) == 0 {
		return nil, errors.New("adam: no parameters")
	}
	a := &Adam{cfg: cfg, params: params}
	for _, p := range params {
		if len(p.Grad) != len(p.Data) {
			return nil, fmt.Errorf("adam: parameter %s has %d gradients for %d values", p.Name, len(p.Grad), len(p.Data))
		}
		a.m = append(a.m, make([]float32, len(p.Data)))
		a.v = append(a.v, make([]float32, len(p.Data)))
	}
	return a, nil
}

// Steps is how many updates have been applied.
func (a *Adam) Steps() int { return a.t }

// Step applies one update from the current gradients; it does not clear them.
func (a *Adam) Step() {
	a.t++
	c := a.cfg
	b1, b2 := float32(c.Beta1), float32(c.Beta2)
	// Bias correction folded into the step size and epsilon, as in PyTorch.
	bc1 := 1 - math.Pow(c.Beta1, float64(a.t))
	bc2 := math.Sqrt(1 - math.Pow(c.Beta2, float64(a.t)))
	step := float32(c.LR / bc1)
	invBC2 := float32(1 / bc2)
	eps := float32(c.Eps)
	wd := float32(c.WeightDecay)
	decay := float32(1 - c.LR*c.WeightDecay)

	update := func(p, g, m, v []float32) {
		for i := range p {
			gi := g[i]
			if !c.Decoupled {
				gi += wd * p[i]
			} else {
				p[i] *= decay
			}
			mi := b1*m[i] + (1-b1)*gi
			vi := b2*v[i] + (1-b2)*gi*gi
			m[i], v[i] = mi, vi
			p[i] -= step * mi / (float32(math.Sqrt(float64(vi)))*invBC2 + eps)
		}
	}
	// Elements are independent, so splitting them across goroutines keeps
	// results bit-identical while halving the time on large flows.
	const chunk = 1 << 16
	workers := runtime.GOMAXPROCS(0)
	type job struct{ k, lo, hi int }
	jobs := make(chan job, 64)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				p := a.params[j.k]
				update(p.Data[j.lo:j.hi], p.Grad[j.lo:j.hi], a.m[j.k][j.lo:j.hi], a.v[j.k][j.lo:j.hi])
			}
		}()
	}
	for k, p := range a.params {
		for lo := 0; lo < len(p.Data); lo += chunk {
			jobs <- job{k, lo, min(lo+chunk, len(p.Data))}
		}
	}
	close(jobs)
	wg.Wait()
}
