package pipeline

import (
	"encoding/json"
	"fmt"

	"github.com/inspectd/inspectd/gaussian"
	"github.com/inspectd/inspectd/model"
)

// FitGaussian fits the single-Gaussian baseline and returns what the model
// file stores.
func FitGaussian(x []float32, n, dim int) (Density, []model.Tensor, json.RawMessage, error) {
	g, err := gaussian.Fit(x, n, dim)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("fitting Gaussian: %w", err)
	}
	ts := GaussianTensors(g)
	mc, _ := json.Marshal(struct {
		Dim       int     `json:"dim"`
		Shrinkage float64 `json:"shrinkage"`
	}{dim, g.Shrinkage()})
	return g, ts, mc, nil
}

// GaussianTensors names the Gaussian's parameters for the model file.
func GaussianTensors(g *gaussian.Model) []model.Tensor {
	var ts []model.Tensor
	for _, p := range g.Params() {
		ts = append(ts, model.Tensor{Name: gaussPrefix + p.Name, Shape: p.Shape, Data: p.Data})
	}
	return ts
}

func loadGaussian(m *model.Model, dim int) (Density, error) {
	g, err := gaussian.New(dim)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Manifest.ID, err)
	}
	for _, p := range g.Params() {
		t, err := m.Tensor(gaussPrefix + p.Name)
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
