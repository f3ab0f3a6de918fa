package pooled

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"

	"github.com/inspectd/inspectd/flow"
	"github.com/inspectd/inspectd/gaussian"
	"github.com/inspectd/inspectd/model"
)

// The flow's tensors in the model file: flowPrefix + flow.Param names.
const flowPrefix = "flow."

// FlowMethod is the stored configuration of the flow method. With Whiten the
// flow models vectors whitened by a shrunk Gaussian fitted to the same good
// parts: an untrained flow (the identity) then scores exactly like the
// Gaussian baseline, and training only has to learn what departs from it —
// which is what makes a flow workable with 16 parts.
type FlowMethod struct {
	flow.Config
	Whiten bool `json:"whiten,omitempty"`
}

// Flow is DifferNet's normalizing flow, on Gaussian-whitened vectors when
// its method says so.
type Flow struct {
	method FlowMethod
	g      *gaussian.Model // the whitening; nil: the flow sees the vectors as they are
	f      *flow.Flow
}

func init() {
	Register(string(model.Flow), func() Density { return &Flow{} })
}

// Validate implements Density.
func (*Flow) Validate(s Settings) error {
	switch {
	case s.Flow.Blocks < 1 || s.Flow.Hidden < 1 || s.Flow.Depth < 1:
		return fmt.Errorf("flow blocks/hidden/depth %d/%d/%d must all be >= 1", s.Flow.Blocks, s.Flow.Hidden, s.Flow.Depth)
	case s.MaxEpochs < 1 || s.Batch < 1:
		return fmt.Errorf("epochs %d and batch %d must be >= 1", s.MaxEpochs, s.Batch)
	case s.LR <= 0:
		return fmt.Errorf("learning rate %g must be > 0", s.LR)
	case s.Noise < 0 || math.IsNaN(s.Noise):
		return fmt.Errorf("training noise %g must be >= 0", s.Noise)
	case s.ValFraction < 0 || s.ValFraction >= 0.5 || math.IsNaN(s.ValFraction):
		return fmt.Errorf("validation fraction %g must be in [0, 0.5)", s.ValFraction)
	}
	return nil
}

// Fit implements Density: the whitening Gaussian first (with Whiten), then
// the flow, trained on the whitened rows.
func (d *Flow) Fit(ctx context.Context, x []float32, n, dim int, s Settings) (Stats, error) {
	in := x
	var g *gaussian.Model
	if s.Whiten {
		var err error
		if g, err = gaussian.Fit(x, n, dim); err != nil {
			return Stats{}, fmt.Errorf("fitting the whitening Gaussian: %w", err)
		}
		in = g.Whiten(x, n)
	}
	f, cfg, st, err := fitFlow(ctx, in, n, dim, s)
	if err != nil {
		return Stats{}, err
	}
	d.method, d.g, d.f = FlowMethod{Config: cfg, Whiten: s.Whiten}, g, f
	return st, nil
}

// Score is the flow's mean z^2 of the (whitened) rows.
func (d *Flow) Score(x []float32, n int) []float32 {
	if d.g == nil {
		return d.f.Score(x, n)
	}
	return d.f.Score(d.g.Whiten(x, n), n)
}

// ScoreGrad chains the flow's input gradient through the whitening.
func (d *Flow) ScoreGrad(x []float32, n int) ([]float32, []float32) {
	if d.g == nil {
		return d.f.ScoreGrad(x, n)
	}
	s, dw := d.f.ScoreGrad(d.g.Whiten(x, n), n)
	return s, d.g.WhitenBackward(dw, n)
}

// Config implements Density.
func (d *Flow) Config() json.RawMessage {
	mc, _ := json.Marshal(d.method)
	return mc
}

// Tensors are the flow's parameters, then the whitening Gaussian's.
func (d *Flow) Tensors() []model.Tensor {
	var ts []model.Tensor
	for _, p := range d.f.Params() {
		ts = append(ts, model.Tensor{Name: flowPrefix + p.Name, Shape: p.Shape, Data: p.Data})
	}
	if d.g != nil {
		ts = append(ts, gaussianTensors(d.g)...)
	}
	return ts
}

// Load implements Density.
func (d *Flow) Load(m *model.Model, dim int) error {
	man := m.Manifest
	var fm FlowMethod
	if err := json.Unmarshal(man.MethodConfig, &fm); err != nil {
		return fmt.Errorf("model %s: flow configuration: %w", man.ID, err)
	}
	if fm.Dim != dim {
		return fmt.Errorf("model %s: flow expects %d features; the backbone gives %d", man.ID, fm.Dim, dim)
	}
	f, err := flow.New(fm.Config)
	if err != nil {
		return fmt.Errorf("model %s: %w", man.ID, err)
	}
	for _, p := range f.Params() {
		t, err := m.Tensor(flowPrefix + p.Name)
		if err != nil {
			return err
		}
		if len(t.Data) != len(p.Data) {
			return fmt.Errorf("model %s: tensor %s has %d values; the flow needs %d", man.ID, t.Name, len(t.Data), len(p.Data))
		}
		copy(p.Data, t.Data)
	}
	var g *gaussian.Model
	if fm.Whiten {
		if g, err = loadGaussian(m, dim); err != nil {
			return err
		}
	}
	d.method, d.g, d.f = fm, g, f
	return nil
}

// fitFlow trains a flow on rows xs.
func fitFlow(ctx context.Context, xs []float32, n, dim int, s Settings) (*flow.Flow, flow.Config, Stats, error) {
	flowCfg := flow.Config{Dim: dim, Blocks: s.Flow.Blocks, Hidden: s.Flow.Hidden, Depth: s.Flow.Depth, Clamp: s.Flow.Clamp, Seed: s.Seed}
	var st Stats
	views := max(s.Views, 1)
	images := n / views
	epochs := s.MaxEpochs
	if s.ValFraction > 0 && images >= 4 && n%views == 0 {
		nv := max(1, int(math.Round(s.ValFraction*float64(images))))
		// Hold out whole images: views of one image are near copies, so a
		// validation set of held-out views would only measure memorisation.
		perm := rand.New(rand.NewPCG(uint64(s.Seed), 0xfa1d)).Perm(images)
		val := Rows(xs, perm[:nv], views, dim)
		tr := Rows(xs, perm[nv:], views, dim)
		p := s.Progress
		if s.Refit {
			p = nil // only the final training reports, so one bar runs once
		}
		f, best, last, err := trainFlow(ctx, flowCfg, tr, (images-nv)*views, val, nv*views, s, s.MaxEpochs, p)
		if err != nil {
			return nil, flowCfg, st, err
		}
		if !s.Refit {
			return f, flowCfg, Stats{Epochs: best, FinalLoss: last}, nil
		}
		epochs = max(best, 1)
	}
	f, best, last, err := trainFlow(ctx, flowCfg, xs, n, nil, 0, s, epochs, s.Progress)
	return f, flowCfg, Stats{Epochs: best, FinalLoss: last}, err
}

// trainFlow trains a new flow for at most epochs epochs, with fresh noise
// every epoch, and returns it at its best epoch on val (or on the training
// loss without val).
func trainFlow(ctx context.Context, flowCfg flow.Config, x []float32, n int, val []float32, nval int, s Settings, epochs int, prog func(done, total int)) (*flow.Flow, int, float64, error) {
	seed := s.Seed
	f, err := flow.New(flowCfg)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("creating flow: %w", err)
	}
	adam := flow.PaperAdam
	adam.LR, adam.WeightDecay = s.LR, s.WeightDecay
	if s.Noise <= 0 && nval == 0 {
		tc := flow.TrainConfig{Adam: adam, MaxEpochs: epochs, Batch: min(s.Batch, n), Seed: seed,
			Patience: s.Patience, MinDelta: 1e-4}
		if prog != nil {
			tc.Progress = func(e, total int, _ float64) { prog(e, total) }
		}
		st, err := f.Train(ctx, x, n, tc)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("training flow: %w", err)
		}
		return f, st.Epochs, st.FinalLoss, nil
	}
	if nval == 0 {
		// full-data refit runs the fixed epoch count
		s.Patience = 0
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x0157))
	noisy := make([]float32, len(x))
	params := f.Params()
	bestW := make([][]float32, len(params))
	for i, p := range params {
		bestW[i] = append([]float32(nil), p.Data...)
	}
	bestLoss, bestEpoch, since := math.Inf(1), 0, 0
	var last float64
	for e := 1; e <= epochs; e++ {
		for i, v := range x {
			noisy[i] = v + float32(s.Noise*rng.NormFloat64())
		}
		tc := flow.TrainConfig{Adam: adam, MaxEpochs: 1, Batch: min(s.Batch, n), Seed: seed + int64(e)}
		st, err := f.Train(ctx, noisy, n, tc)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("training flow: %w", err)
		}
		last = st.FinalLoss
		if nval > 0 {
			last = f.Loss(val, nval)
		}
		if prog != nil {
			prog(e, epochs)
		}
		slog.Debug("flow epoch", "epoch", e, "train_loss", st.FinalLoss, "val_loss", last, "val", nval > 0)
		if last < bestLoss-1e-4 {
			bestLoss, bestEpoch, since = last, e, 0
			for i, p := range params {
				copy(bestW[i], p.Data)
			}
		} else if since++; s.Patience > 0 && since >= s.Patience {
			break
		}
	}
	if nval == 0 {
		return f, epochs, last, nil
	}
	for i, p := range params {
		copy(p.Data, bestW[i])
	}
	return f, bestEpoch, bestLoss, nil
}

// Rows gathers the rows of the given images from a block of views rows per
// image.
func Rows(all []float32, imgs []int, views, dim int) []float32 {
	out := make([]float32, 0, len(imgs)*views*dim)
	for _, i := range imgs {
		out = append(out, all[i*views*dim:(i+1)*views*dim]...)
	}
	return out
}
