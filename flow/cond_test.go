package flow

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestCondRoundTrip: a conditional flow inverts under the same condition,
// and a different condition gives a different map (the condition is read).
func TestCondRoundTrip(t *testing.T) {
	for _, tc := range []struct{ dim, cond, depth int }{{6, 3, 1}, {7, 5, 2}, {32, 16, 1}} {
		t.Run(fmt.Sprintf("D%d_C%d_L%d", tc.dim, tc.cond, tc.depth), func(t *testing.T) {
			f := mustNew(t, Config{Dim: tc.dim, Blocks: 3, Hidden: 8, Depth: tc.depth, Cond: tc.cond, Seed: 3})
			perturb(t, f, 3, 0.5)
			r := rand.New(rand.NewPCG(2, 2))
			n := 9
			x := randBatch(r, n, tc.dim, 1)
			c := randBatch(r, n, tc.cond, 1)
			z, _ := f.ForwardCond(x, c, n)
			back := f.InverseCond(z, c, n)
			for i := range x {
				if d := math.Abs(float64(back[i] - x[i])); d > 1e-4*(1+math.Abs(float64(x[i]))) {
					t.Fatalf("x[%d] = %v, round trip gives %v", i, x[i], back[i])
				}
			}
			c2 := randBatch(r, n, tc.cond, 1)
			z2, _ := f.ForwardCond(x, c2, n)
			var diff float64
			for i := range z {
				diff = max(diff, math.Abs(float64(z[i]-z2[i])))
			}
			if diff < 1e-3 {
				t.Fatalf("another condition moved z by at most %v: the condition is ignored", diff)
			}
		})
	}
}

// TestCondGradients checks every parameter gradient of LossGradCond,
// the condition's weight rows included, against central differences.
func TestCondGradients(t *testing.T) {
	for _, tc := range []struct{ dim, cond, depth int }{{5, 3, 2}, {6, 4, 1}} {
		t.Run(fmt.Sprintf("D%d_C%d", tc.dim, tc.cond), func(t *testing.T) {
			f := mustNew(t, Config{Dim: tc.dim, Blocks: 2, Hidden: 6, Depth: tc.depth, Cond: tc.cond, Seed: 7})
			perturb(t, f, 7, 0.6)
			n := 4
			r := rand.New(rand.NewPCG(6, 6))
			x := randBatch(r, n, tc.dim, 1)
			c := randBatch(r, n, tc.cond, 1)
			f.ZeroGrad()
			loss := f.LossGradCond(x, c, n)
			if l2 := f.LossCond(x, c, n); math.Abs(l2-loss) > 1e-6 {
				t.Fatalf("LossGradCond loss %v, LossCond %v", loss, l2)
			}
			numeric := func(p Param, i int, h float32) float64 {
				old := p.Data[i]
				p.Data[i] = old + h
				lp := f.LossCond(x, c, n)
				p.Data[i] = old - h
				lm := f.LossCond(x, c, n)
				p.Data[i] = old
				return (lp - lm) / (2 * float64(h))
			}
			const h = 2e-3
			checked, nonzero, condRows := 0, 0, 0
			for _, p := range f.Params() {
				first := strings.HasSuffix(p.Name, "layer0.weight")
				for i := range p.Data {
					got := float64(p.Grad[i])
					num := numeric(p, i, h)
					if math.Abs(got-num) > 2e-4+1e-2*math.Abs(num) {
						if num2 := numeric(p, i, h/4); math.Abs(got-num2) > 5e-4+1e-2*math.Abs(num2) {
							t.Fatalf("%s[%d]: gradient %v, numeric %v (step %v), %v (step %v)", p.Name, i, got, num, h, num2, h/4)
						}
					}
					checked++
					if math.Abs(num) > 1e-4 {
						nonzero++
						// The condition's rows come after the half's.
						if first && i/p.Shape[1] >= p.Shape[0]-tc.cond {
							condRows++
						}
					}
				}
			}
			if checked != f.NumParams() || nonzero < checked/3 {
				t.Fatalf("checked %d of %d parameters, %d with visible gradient", checked, f.NumParams(), nonzero)
			}
			if condRows == 0 {
				t.Fatal("no condition weight has a visible gradient")
			}
		})
	}
}

// TestCondMismatchPanics: conditions of the wrong size are programming
// errors, as batch shape mismatches are; Train reports them as errors.
func TestCondMismatch(t *testing.T) {
	f := mustNew(t, Config{Dim: 4, Blocks: 1, Hidden: 4, Depth: 1, Cond: 2})
	x := make([]float32, 8)
	for _, c := range [][]float32{nil, make([]float32, 3)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Forward with %d condition values for 2 rows of width 2 did not panic", len(c))
				}
			}()
			f.ForwardCond(x, c, 2)
		}()
	}
	if _, err := f.Train(t.Context(), x, 2, TrainConfig{MaxEpochs: 1, Batch: 2}); err == nil || !strings.Contains(err.Error(), "condition") {
		t.Errorf("Train without conditions: err %v", err)
	}
	if _, err := New(Config{Dim: 4, Blocks: 1, Hidden: 4, Depth: 1, Cond: -1}); err == nil {
		t.Error("negative Cond accepted")
	}
}
