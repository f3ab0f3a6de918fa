package pooled

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/inspectd/inspectd/gaussian"
	"github.com/inspectd/inspectd/model"
)

// The Gaussian's tensors in the model file: gaussianPrefix + its parameter
// names (a whitened flow stores its Gaussian under the same names).
const gaussianPrefix = "gaussian."

// Gaussian is the single-Gaussian baseline (gaussian.Model, Ledoit-Wolf
// shrunk covariance).
type Gaussian struct {
	g *gaussian.Model
}

func init() {
	Register(string(model.Gaussian), func() Density { return &Gaussian{} })
}

// Validate implements Density: a closed-form fit has no settings.
func (*Gaussian) Validate(Settings) error { return nil }

// Fit implements Density.
func (d *Gaussian) Fit(_ context.Context, x []float32, n, dim int, _ Settings) (Stats, error) {
	g, err := gaussian.Fit(x, n, dim)
	if err != nil {
		return Stats{}, fmt.Errorf("fitting Gaussian: %w", err)
	}
	d.g = g
	return Stats{}, nil
}

// Score implements Density.
func (d *Gaussian) Score(x []float32, n int) []float32 { return d.g.Score(x, n) }

// ScoreGrad implements Density.
func (d *Gaussian) ScoreGrad(x []float32, n int) ([]float32, []float32) { return d.g.ScoreGrad(x, n) }

// Config implements Density.
func (d *Gaussian) Config() json.RawMessage {
	mc, _ := json.Marshal(struct {
		Dim       int     `json:"dim"`
		Shrinkage float64 `json:"shrinkage"`
	}{d.g.Dim(), d.g.Shrinkage()})
	return mc
}

// Tensors implements Density.
func (d *Gaussian) Tensors() []model.Tensor { return gaussianTensors(d.g) }

// Load implements Density.
func (d *Gaussian) Load(m *model.Model, dim int) error {
	g, err := loadGaussian(m, dim)
	d.g = g
	return err
}

// gaussianTensors names the Gaussian's parameters for the model file.
func gaussianTensors(g *gaussian.Model) []model.Tensor {
	var ts []model.Tensor
	for _, p := range g.Params() {
		ts = append(ts, model.Tensor{Name: gaussianPrefix + p.Name, Shape: p.Shape, Data: p.Data})
	}
	return ts
}

func loadGaussian(m *model.Model, dim int) (*gaussian.Model, error) {
	g, err := gaussian.New(dim)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Manifest.ID, err)
	}
	for _, p := range g.Params() {
		t, err := m.Tensor(gaussianPrefix + p.Name)
		if err != nil {
			return nil, err
		}
		if len(t.Data) != len(p.Data) {
			return nil, fmt.Errorf("model %s: tensor %s has %d values; the Gaussian needs %d", m.Manifest.ID, t.Name, len(t.Data), len(p.Data))
		}
		copy(p.Data, t.Data)
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Manifest.ID, err)
	}
	return g, nil
}
