package calibration

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/inspectd/inspectd/model"
)

// views draws images x views rows of dim correlated values: each image is a
// random centre, each view a small perturbation of it, like the cached
// transformations of one part. shift moves the centre against the shared
// direction (alternating signs), as a defect would.
func views(r *rand.Rand, images, views, dim int, shift float64) []float32 {
	out := make([]float32, 0, images*views*dim)
	for i := 0; i < images; i++ {
		c := make([]float64, dim)
		common := r.NormFloat64()
		for j := range c {
			c[j] = common + 0.5*r.NormFloat64() + shift*float64(1-2*(j%2))
		}
		for v := 0; v < views; v++ {
			for j := range c {
				out = append(out, float32(c[j]+0.1*r.NormFloat64()))
			}
		}
	}
	return out
}

func TestFitFlowRegularised(t *testing.T) {
	const dim, tv, n = 32, 8, 16
	r := rand.New(rand.NewPCG(7, 7))
	train := views(r, n, tv, dim, 0)
	good := views(r, 8, 4, dim, 0)
	bad := views(r, 8, 4, dim, 2)
	for _, tc := range []struct {
		name   string
		noise  float64
		val    float64
		refit  bool
		whiten bool
	}{
		{"noise only", 0.5, 0, false, false},
		{"held-out stop", 0.5, 0.25, false, false},
		{"held-out stop and refit", 0.5, 0.25, true, false},
		{"held-out stop without noise", 0, 0.25, true, false},
		{"whitened, defaults", Defaults().Noise, Defaults().ValFraction, Defaults().Refit, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.Method, cfg.TrainViews = model.Flow, tv
			cfg.Flow.Hidden, cfg.MaxEpochs, cfg.Batch = 32, 30, 32
			cfg.Noise, cfg.ValFraction, cfg.Refit, cfg.Whiten = tc.noise, tc.val, tc.refit, tc.whiten
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			fit, err := Fit(context.Background(), train, n*tv, dim, cfg, 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			if fit.Epochs < 1 || fit.Epochs > cfg.MaxEpochs {
				t.Errorf("epochs %d outside [1, %d]", fit.Epochs, cfg.MaxEpochs)
			}
			g := fit.ScoreImages(good, 8, 4, dim)
			b := fit.ScoreImages(bad, 8, 4, dim)
			var maxGood, minBad float64 = 0, math.Inf(1)
			for i := range g {
				if math.IsNaN(g[i]) || g[i] > 100 {
					t.Fatalf("new good part scored %g: the flow memorised its training rows", g[i])
				}
				maxGood, minBad = max(maxGood, g[i]), min(minBad, b[i])
			}
			if minBad <= maxGood {
				t.Errorf("shifted parts not separated: lowest %g <= highest good %g", minBad, maxGood)
			}
		})
	}
}

func TestValidateRegularisation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		noise float64
		val   float64
		ok    bool
	}{
		{"defaults", 0.5, 0.25, true},
		{"none", 0, 0, true},
		{"negative noise", -0.1, 0.25, false},
		{"NaN noise", math.NaN(), 0.25, false},
		{"half held out", 0.5, 0.5, false},
		{"negative fraction", 0.5, -0.1, false},
	} {
		cfg := Defaults()
		cfg.Noise, cfg.ValFraction = tc.noise, tc.val
		if err := cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
