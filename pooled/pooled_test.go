package pooled

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/gaussian"
	"github.com/inspectd/inspectd/model"
)

// Every pooled method a model file can name has its manifest bounds.
func TestEveryDensityHasBounds(t *testing.T) {
	for _, name := range Names() {
		if !model.HasBounds(model.Method(name)) {
			t.Errorf("pooled density %s has no bounds check", name)
		}
	}
}

func correlated(n, d int) []float32 {
	r := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, n*d)
	for i := range n {
		a := r.NormFloat64()
		for j := range d {
			x[i*d+j] = float32(a + 0.5*r.NormFloat64() + float64(j)*0.1)
		}
	}
	return x
}

// The Gaussian by name scores as gaussian.Fit's model does, to the bit.
func TestGaussianByNameIsTheGaussian(t *testing.T) {
	const n, d = 60, 6
	x := correlated(n, d)
	g, err := gaussian.Fit(x, n, d)
	if err != nil {
		t.Fatal(err)
	}
	dens, err := New(string(model.Gaussian))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dens.Fit(context.Background(), x, n, d, Settings{}); err != nil {
		t.Fatal(err)
	}
	ws, wd := g.ScoreGrad(x[:5*d], 5)
	gs, gd := dens.ScoreGrad(x[:5*d], 5)
	if !slices.Equal(ws, gs) || !slices.Equal(wd, gd) || !slices.Equal(g.Score(x, n), dens.Score(x, n)) {
		t.Errorf("by name: scores %v, directly %v", gs, ws)
	}
}

// What Fit leaves is what the model file keeps: a density loaded from its
// Config and Tensors scores and differentiates as the fitted one, for both
// pooled methods (the flow whitened and not).
func TestLoadedScoresAsFitted(t *testing.T) {
	const n, d = 48, 6
	x := correlated(n, d)
	for _, tc := range []struct {
		method model.Method
		whiten bool
	}{{model.Gaussian, false}, {model.Flow, true}, {model.Flow, false}} {
		s := Settings{Seed: 2, Views: 4, Training: Training{Flow: FlowShape{Blocks: 2, Hidden: 8, Depth: 1, Clamp: 3}, MaxEpochs: 5,
			Batch: 16, Patience: 2, LR: 1e-3, Whiten: tc.whiten, Noise: 0.5, ValFraction: 0.25, Refit: true}}
		fitted, err := New(string(tc.method))
		if err != nil {
			t.Fatal(err)
		}
		if err := fitted.Validate(s); err != nil {
			t.Fatal(err)
		}
		if _, err := fitted.Fit(context.Background(), x, n, d, s); err != nil {
			t.Fatal(err)
		}
		m := model.FromTensors(model.Manifest{ID: "t", Method: tc.method, MethodConfig: fitted.Config()}, fitted.Tensors())
		loaded, err := Load(m, d)
		if err != nil {
			t.Fatalf("%s (whiten %v): %v", tc.method, tc.whiten, err)
		}
		fs, fd := fitted.ScoreGrad(x, n)
		ls, ld := loaded.ScoreGrad(x, n)
		if !slices.Equal(fs, ls) || !slices.Equal(fd, ld) {
			t.Errorf("%s (whiten %v): loaded scores %v, fitted %v", tc.method, tc.whiten, ls[:3], fs[:3])
		}
		if string(loaded.Config()) != string(fitted.Config()) {
			t.Errorf("%s (whiten %v): loaded config %s, fitted %s", tc.method, tc.whiten, loaded.Config(), fitted.Config())
		}
		if _, err := Load(m, d+1); err == nil {
			t.Errorf("%s (whiten %v): loaded for %d features, fitted on %d", tc.method, tc.whiten, d+1, d)
		}
	}
}

// A model file naming no registered density is refused by name.
func TestLoadUnknownMethod(t *testing.T) {
	m := model.FromTensors(model.Manifest{ID: "t", Method: "knn"}, nil)
	if _, err := Load(m, 4); err == nil || !strings.Contains(err.Error(), `model t: unknown method "knn"`) {
		t.Errorf("loading a knn model: %v", err)
	}
}
