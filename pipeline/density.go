package pipeline

import (
	"encoding/json"
	"fmt"

	"github.com/inspectd/inspectd/flow"
	"github.com/inspectd/inspectd/gaussian"
	"github.com/inspectd/inspectd/model"
)

// Density scores standardised feature vectors: higher means less like the
// good parts. Two real implementations: the normalizing flow (DifferNet) and
// the single-Gaussian baseline it has to beat.
type Density interface {
	// Score returns one score per row of the n x D batch.
	Score(x []float32, n int) []float32
	// ScoreGrad also returns d score_i / d x_i (for heatmaps).
	ScoreGrad(x []float32, n int) (scores, dx []float32)
}

// Tensor names in the model file.
const (
	TensorFeatureMean = "features.mean"
	TensorFeatureStd  = "features.std"
	flowPrefix        = "flow."
	gaussPrefix       = "gaussian."
)

// FlowMethod is the stored configuration of the flow method. With Whiten the
// flow models vectors whitened by a shrunk Gaussian fitted to the same good
// parts: an untrained flow (the identity) then scores exactly like the
// Gaussian baseline, and training only has to learn what departs from it —
// which is what makes a flow workable with 16 parts.
type FlowMethod struct {
	flow.Config
	Whiten bool `json:"whiten,omitempty"`
}

// WhitenedFlow is a flow on Gaussian-whitened vectors.
type WhitenedFlow struct {
	G *gaussian.Model
	F *flow.Flow
}

// Score is the flow's mean z^2 of the whitened rows.
func (w *WhitenedFlow) Score(x []float32, n int) []float32 { return w.F.Score(w.G.Whiten(x, n), n) }

// ScoreGrad chains the flow's input gradient through the whitening.
func (w *WhitenedFlow) ScoreGrad(x []float32, n int) ([]float32, []float32) {
	s, dw := w.F.ScoreGrad(w.G.Whiten(x, n), n)
	return s, w.G.WhitenBackward(dw, n)
}

// FlowTensors names the flow's parameters for the model file.
func FlowTensors(f *flow.Flow) []model.Tensor {
	var ts []model.Tensor
	for _, p := range f.Params() {
		ts = append(ts, model.Tensor{Name: flowPrefix + p.Name, Shape: p.Shape, Data: p.Data})
	}
	return ts
}

// LoadDensity rebuilds the model's density estimator for vectors of dim.
func LoadDensity(m *model.Model, dim int) (Density, error) {
	man := m.Manifest
	switch man.Method {
	case model.Flow:
		var fm FlowMethod
		if err := json.Unmarshal(man.MethodConfig, &fm); err != nil {
			return nil, fmt.Errorf("model %s: flow configuration: %w", man.ID, err)
		}
		cfg := fm.Config
		if cfg.Dim != dim {
			return nil, fmt.Errorf("model %s: flow expects %d features; the backbone gives %d", man.ID, cfg.Dim, dim)
		}
		f, err := flow.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", man.ID, err)
		}
		for _, p := range f.Params() {
			t, err := m.Tensor(flowPrefix + p.Name)
			if err != nil {
				return nil, err
			}
			if len(t.Data) != len(p.Data) {
				return nil, fmt.Errorf("model %s: tensor %s has %d values; the flow needs %d", man.ID, t.Name, len(t.Data), len(p.Data))
			}
			copy(p.Data, t.Data)
		}
		if !fm.Whiten {
			return f, nil
		}
		g, err := loadGaussian(m, dim)
		if err != nil {
			return nil, err
		}
		return &WhitenedFlow{G: g.(*gaussian.Model), F: f}, nil
	case model.Gaussian:
		return loadGaussian(m, dim)
	default:
		return nil, fmt.Errorf("model %s: unknown method %q", man.ID, man.Method)
	}
}
