package pooled

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/inspectd/inspectd/flow"
	"github.com/inspectd/inspectd/gaussian"
)

// An untrained flow is a permutation, so a whitened flow must then score, and
// differentiate, exactly like the Gaussian it whitens with: the property that
// makes the Gaussian the flow's starting point.
func TestWhitenedFlowStartsAsGaussian(t *testing.T) {
	const n, d = 40, 12
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(r.NormFloat64() + float64(i%d)*0.3)
	}
	g, err := gaussian.Fit(x, n, d)
	if err != nil {
		t.Fatal(err)
	}
	f, err := flow.New(flow.Config{Dim: d, Blocks: 3, Hidden: 8, Depth: 1, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	wf := &Flow{method: FlowMethod{Whiten: true}, g: g, f: f}
	test := x[:5*d]
	sg, dg := g.ScoreGrad(test, 5)
	sw, dw := wf.ScoreGrad(test, 5)
	for i := range sg {
		if math.Abs(float64(sg[i]-sw[i])) > 1e-4*math.Abs(float64(sg[i])) {
			t.Errorf("row %d: whitened flow %g, Gaussian %g", i, sw[i], sg[i])
		}
	}
	for i := range dg {
		if math.Abs(float64(dg[i]-dw[i])) > 1e-4*(1+math.Abs(float64(dg[i]))) {
			t.Fatalf("gradient %d: whitened flow %g, Gaussian %g", i, dw[i], dg[i])
		}
	}
}
