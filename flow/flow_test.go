package flow

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"gonum.org/v1/gonum/mat"
)

func randBatch(r *rand.Rand, n, d int, scale float64) []float32 {
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(scale * r.NormFloat64())
	}
	return x
}

// perturb gives every parameter random values so that tests exercise
// non-trivial scales and shifts (New starts as a permutation).
func perturb(t testing.TB, f *Flow, seed uint64, scale float64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 99))
	for _, p := range f.Params() {
		fan := 1.0
		if len(p.Shape) == 2 {
			fan = float64(p.Shape[0])
		}
		for i := range p.Data {
			p.Data[i] = float32(scale * r.NormFloat64() / math.Sqrt(fan))
		}
	}
}

func mustNew(t testing.TB, cfg Config) *Flow {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Dim: 8, Blocks: 2, Hidden: 4, Depth: 1}
	tests := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error, "" for valid
	}{
		{"valid", func(*Config) {}, ""},
		{"odd dim", func(c *Config) { c.Dim = 7 }, ""},
		{"dim 1", func(c *Config) { c.Dim = 1 }, "Dim"},
		{"no blocks", func(c *Config) { c.Blocks = 0 }, "Blocks"},
		{"no hidden", func(c *Config) { c.Hidden = 0 }, "Hidden"},
		{"depth 0", func(c *Config) { c.Depth = 0 }, "Depth"},
		{"negative clamp", func(c *Config) { c.Clamp = -1 }, "Clamp"},
		{"NaN clamp", func(c *Config) { c.Clamp = math.NaN() }, "Clamp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrConfig) || !contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrConfig mentioning %q", err, tc.want)
			}
			if _, err := New(c); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestNewStartsAsPermutation(t *testing.T) {
	f := mustNew(t, Config{Dim: 9, Blocks: 3, Hidden: 16, Depth: 2, Seed: 1})
	if f.Config().Clamp != DefaultClamp {
		t.Fatalf("clamp %v, want default %v", f.Config().Clamp, DefaultClamp)
	}
	x := randBatch(rand.New(rand.NewPCG(1, 1)), 5, 9, 1)
	z, ld := f.Forward(x, 5)
	for i := 0; i < 5; i++ {
		if ld[i] != 0 {
			t.Fatalf("logdet[%d] = %v at init, want 0", i, ld[i])
		}
		var sx, sz float64
		for j := 0; j < 9; j++ {
			sx += float64(x[i*9+j])
			sz += float64(z[i*9+j])
		}
		if math.Abs(sx-sz) > 1e-5 {
			t.Fatalf("row %d: z is not a permutation of x (sums %v, %v)", i, sx, sz)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct{ dim, blocks, hidden, depth int }{
		{6, 2, 8, 1}, {7, 3, 8, 2}, {64, 8, 32, 2}, {2, 1, 4, 1},
	} {
		t.Run(fmt.Sprintf("D%d_B%d_H%d_L%d", tc.dim, tc.blocks, tc.hidden, tc.depth), func(t *testing.T) {
			f := mustNew(t, Config{Dim: tc.dim, Blocks: tc.blocks, Hidden: tc.hidden, Depth: tc.depth, Seed: 3})
			perturb(t, f, 3, 0.5)
			n := 11
			x := randBatch(rand.New(rand.NewPCG(2, 2)), n, tc.dim, 1)
			z, ld := f.Forward(x, n)
			var maxLD float64
			for _, v := range ld {
				maxLD = max(maxLD, math.Abs(float64(v)))
			}
			if maxLD < 0.1 {
				t.Fatalf("logdet magnitude %v: perturbation too weak to test anything", maxLD)
			}
			back := f.Inverse(z, n)
			for i := range x {
				if d := math.Abs(float64(back[i] - x[i])); d > 1e-4*(1+math.Abs(float64(x[i]))) {
					t.Fatalf("x[%d] = %v, round trip gives %v", i, x[i], back[i])
				}
			}
		})
	}
}

// TestLogdetNumeric compares log|det J| with the log-determinant of a
// central-difference Jacobian, evaluated in float64.
func TestLogdetNumeric(t *testing.T) {
	for _, dim := range []int{6, 7} {
		t.Run(fmt.Sprint(dim), func(t *testing.T) {
			f := mustNew(t, Config{Dim: dim, Blocks: 3, Hidden: 10, Depth: 2, Seed: 5})
			perturb(t, f, 5, 0.9)
			r := rand.New(rand.NewPCG(4, 4))
			var largest, worst float64
			for trial := 0; trial < 5; trial++ {
				x := randBatch(r, 1, dim, 1)
				_, ld := f.Forward(x, 1)
				// The ReLU subnets make z piecewise smooth: steps must be
				// small enough to rarely cross a kink, yet large enough
				// that float32 rounding of z stays well below the change.
				const h = 1e-3
				// All 2*dim perturbed copies go through in one batch.
				xs := make([]float32, 0, 2*dim*dim)
				for j := 0; j < dim; j++ {
					for _, s := range []float32{h, -h} {
						row := append([]float32(nil), x...)
						row[j] += s
						xs = append(xs, row...)
					}
				}
				zs, _ := f.Forward(xs, 2*dim)
				J := mat.NewDense(dim, dim, nil)
				for j := 0; j < dim; j++ {
					plus, minus := zs[(2*j)*dim:(2*j+1)*dim], zs[(2*j+1)*dim:(2*j+2)*dim]
					for i := 0; i < dim; i++ {
						step := float64(x[j]+h) - float64(x[j]-h) // exact float32 step
						J.Set(i, j, (float64(plus[i])-float64(minus[i]))/step)
					}
				}
				var lu mat.LU
				lu.Factorize(J)
				num, _ := lu.LogDet()
				largest = max(largest, math.Abs(float64(ld[0])))
				d := math.Abs(num - float64(ld[0]))
				worst = max(worst, d)
				if d > 1e-2 {
					t.Fatalf("trial %d: logdet %v, numeric %v (diff %v)", trial, ld[0], num, d)
				}
			}
			t.Logf("largest |logdet| %.3f, worst difference %.2g", largest, worst)
			if largest < 0.3 {
				t.Fatalf("largest |logdet| %v: perturbation too weak for a meaningful check", largest)
			}
		})
	}
}

// TestGradients checks every parameter gradient of LossGrad and the input
// gradient of ScoreGrad against central differences.
func TestGradients(t *testing.T) {
	for _, dim := range []int{5, 6} {
		t.Run(fmt.Sprint(dim), func(t *testing.T) {
			f := mustNew(t, Config{Dim: dim, Blocks: 2, Hidden: 6, Depth: 2, Seed: 7})
			perturb(t, f, 7, 0.6)
			n := 4
			x := randBatch(rand.New(rand.NewPCG(6, 6)), n, dim, 1)
			f.ZeroGrad()
			loss := f.LossGrad(x, n)
			if l2 := f.Loss(x, n); math.Abs(l2-loss) > 1e-6 {
				t.Fatalf("LossGrad loss %v, Loss %v", loss, l2)
			}
			// Small steps keep ReLU kinks out of the difference; a second,
			// smaller step covers the rare unit that still crosses zero.
			numeric := func(p Param, i int, h float32) float64 {
				old := p.Data[i]
				p.Data[i] = old + h
				lp := f.Loss(x, n)
				p.Data[i] = old - h
				lm := f.Loss(x, n)
				p.Data[i] = old
				return (lp - lm) / (2 * float64(h))
			}
			const h = 2e-3
			checked, nonzero := 0, 0
			for _, p := range f.Params() {
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
					}
				}
			}
			if checked != f.NumParams() || nonzero < checked/3 {
				t.Fatalf("checked %d of %d parameters, %d with visible gradient", checked, f.NumParams(), nonzero)
			}

			scores, dx := f.ScoreGrad(x, n)
			plain := f.Score(x, n)
			for i := range scores {
				if scores[i] != plain[i] {
					t.Fatalf("ScoreGrad score %v, Score %v", scores[i], plain[i])
				}
			}
			for i := 0; i < n; i++ {
				for j := 0; j < dim; j++ {
					row := append([]float32(nil), x[i*dim:(i+1)*dim]...)
					row[j] += h
					sp := f.Score(row, 1)[0]
					row[j] -= 2 * h
					sm := f.Score(row, 1)[0]
					num := float64(sp-sm) / (2 * h)
					got := float64(dx[i*dim+j])
					if math.Abs(got-num) > 5e-4+1e-2*math.Abs(num) {
						t.Fatalf("d score[%d] / dx[%d]: %v, numeric %v", i, j, got, num)
					}
				}
			}
		})
	}
}

// gaussianSamples draws from N(mu, A A^T) and returns the optimum of Loss for
// that distribution: 0.5 + 0.5*log det(Sigma)/D (the NLL per dimension minus
// 0.5*log(2*pi)).
func gaussianSamples(r *rand.Rand, n int, mu []float64, A *mat.Dense) ([]float32, float64) {
	d := len(mu)
	x := make([]float32, n*d)
	e := make([]float64, d)
	for i := 0; i < n; i++ {
		for j := range e {
			e[j] = r.NormFloat64()
		}
		for j := 0; j < d; j++ {
			v := mu[j]
			for k := 0; k < d; k++ {
				v += A.At(j, k) * e[k]
			}
			x[i*d+j] = float32(v)
		}
	}
	var sigma mat.SymDense
	sigma.SymOuterK(1, A)
	var chol mat.Cholesky
	chol.Factorize(&sigma)
	return x, 0.5 + 0.5*chol.LogDet()/float64(d)
}

// trueLoss is Loss under the true density N(mu, A A^T) on the given sample.
func trueLoss(x []float32, n int, mu []float64, A *mat.Dense) float64 {
	d := len(mu)
	Ainv := mat.NewDense(d, d, nil)
	if err := Ainv.Inverse(A); err != nil {
		panic(err)
	}
	logdetA := 0.0
	for i := 0; i < d; i++ {
		logdetA += math.Log(math.Abs(A.At(i, i))) // A is lower triangular
	}
	var sum float64
	v := mat.NewVecDense(d, nil)
	var e mat.VecDense
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			v.SetVec(j, float64(x[i*d+j])-mu[j])
		}
		e.MulVec(Ainv, v)
		sum += (0.5*mat.Dot(&e, &e) + logdetA) / float64(d)
	}
	return sum / float64(n)
}

func TestTrainReachesGaussianNLL(t *testing.T) {
	A := mat.NewDense(4, 4, []float64{
		1.5, 0, 0, 0,
		0.9, 0.5, 0, 0,
		-0.4, 0.3, 0.7, 0,
		0.2, -0.6, 0.1, 0.3,
	})
	mu := []float64{1, -2, 0.5, 3}
	r := rand.New(rand.NewPCG(8, 8))
	const nTrain, nVal, nTest = 8192, 2048, 8192
	train, opt := gaussianSamples(r, nTrain, mu, A)
	val, _ := gaussianSamples(r, nVal, mu, A)
	test, _ := gaussianSamples(r, nTest, mu, A)
	// A small flow: with ~500 parameters the expected excess held-out NLL
	// from fitting noise (about params / (2 n D)) stays near 0.01.
	f := mustNew(t, Config{Dim: 4, Blocks: 4, Hidden: 8, Depth: 1, Seed: 9})
	before := f.Loss(test, nTest)
	st, err := f.Train(context.Background(), train, nTrain, TrainConfig{
		Adam:      AdamConfig{LR: 3e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
		MaxEpochs: 80, Batch: 256, Seed: 1, Patience: 15, MinDelta: 1e-4,
		Val: val, ValN: nVal,
	})
	if err != nil {
		t.Fatal(err)
	}
	after := f.Loss(test, nTest)
	exact := trueLoss(test, nTest, mu, A)
	t.Logf("true density on the test sample %.4f, optimum %.4f, before %.4f, after %.4f (%d epochs, %s), train loss %.4f, best val %.4f at epoch %d",
		exact, opt, before, after, st.Epochs, st.StopReason, st.TrainLoss[st.Epochs-1], st.BestLoss, st.BestEpoch)
	// Tolerance: 0.025 nats per dimension above the true density's loss on
	// the same held-out sample; the untrained flow is over 2 nats away.
	if before-exact < 1 {
		t.Fatalf("untrained loss %v already near the optimum %v: test is vacuous", before, exact)
	}
	if after > exact+0.025 {
		t.Fatalf("held-out loss %v, want within 0.025 of the true density's %v", after, exact)
	}
	if len(st.TrainLoss) != st.Epochs || st.FinalLoss != st.ValLoss[st.Epochs-1] || st.BestLoss > st.FirstLoss {
		t.Fatalf("inconsistent stats %+v", st)
	}
}

func TestTrainDeterministic(t *testing.T) {
	cfg := Config{Dim: 12, Blocks: 2, Hidden: 16, Depth: 2, Seed: 4}
	x := randBatch(rand.New(rand.NewPCG(9, 9)), 100, 12, 1)
	run := func(seed int64) *Flow {
		f := mustNew(t, cfg)
		if _, err := f.Train(context.Background(), x, 100, TrainConfig{MaxEpochs: 3, Batch: 16, Seed: seed}); err != nil {
			t.Fatal(err)
		}
		return f
	}
	a, b, c := run(1), run(1), run(2)
	same := func(f, g *Flow) bool {
		for k, p := range f.Params() {
			q := g.Params()[k]
			for i := range p.Data {
				if math.Float32bits(p.Data[i]) != math.Float32bits(q.Data[i]) {
					return false
				}
			}
		}
		return true
	}
	if !same(a, b) {
		t.Fatal("same seed gave different weights")
	}
	if same(a, c) {
		t.Fatal("different batch seeds gave identical weights")
	}
}

func TestParamsRoundTrip(t *testing.T) {
	cfg := Config{Dim: 9, Blocks: 3, Hidden: 8, Depth: 2, Seed: 11}
	f := mustNew(t, cfg)
	perturb(t, f, 11, 0.5)
	g := mustNew(t, f.Config())
	if len(g.Params()) != len(f.Params()) || g.NumParams() != f.NumParams() {
		t.Fatal("parameter lists differ between flows of the same config")
	}
	for k, p := range f.Params() {
		q := g.Params()[k]
		if p.Name != q.Name || fmt.Sprint(p.Shape) != fmt.Sprint(q.Shape) {
			t.Fatalf("param %d: %s%v vs %s%v", k, p.Name, p.Shape, q.Name, q.Shape)
		}
		copy(q.Data, p.Data)
	}
	x := randBatch(rand.New(rand.NewPCG(10, 10)), 7, 9, 1)
	zf, lf := f.Forward(x, 7)
	zg, lg := g.Forward(x, 7)
	for i := range zf {
		if zf[i] != zg[i] {
			t.Fatalf("z[%d] differs after copying params: %v vs %v", i, zf[i], zg[i])
		}
	}
	for i := range lf {
		if lf[i] != lg[i] {
			t.Fatal("logdet differs after copying params")
		}
	}
	want := 0
	for _, p := range f.Params() {
		size := 1
		for _, s := range p.Shape {
			size *= s
		}
		if size != len(p.Data) || len(p.Grad) != len(p.Data) {
			t.Fatalf("%s: shape %v for %d values", p.Name, p.Shape, len(p.Data))
		}
		want += size
	}
	if f.NumParams() != want {
		t.Fatalf("NumParams %d, shapes add to %d", f.NumParams(), want)
	}
}

func TestConcurrentScoreGrad(t *testing.T) {
	f := mustNew(t, Config{Dim: 32, Blocks: 4, Hidden: 24, Depth: 2, Seed: 12})
	perturb(t, f, 12, 0.5)
	r := rand.New(rand.NewPCG(12, 12))
	const workers = 6
	xs := make([][]float32, workers)
	wantS := make([][]float32, workers)
	wantD := make([][]float32, workers)
	for w := range xs {
		n := 3 + w
		xs[w] = randBatch(r, n, 32, 1)
		wantS[w], wantD[w] = f.ScoreGrad(xs[w], n)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range xs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rep := 0; rep < 5; rep++ {
				s, d := f.ScoreGrad(xs[w], len(xs[w])/32)
				for i := range s {
					if s[i] != wantS[w][i] {
						errs <- fmt.Errorf("worker %d: score %v, serial %v", w, s[i], wantS[w][i])
						return
					}
				}
				for i := range d {
					if d[i] != wantD[w][i] {
						errs <- fmt.Errorf("worker %d: dx %v, serial %v", w, d[i], wantD[w][i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestTrainStops(t *testing.T) {
	x := randBatch(rand.New(rand.NewPCG(13, 13)), 64, 8, 1)
	cfg := Config{Dim: 8, Blocks: 2, Hidden: 8, Depth: 1, Seed: 13}

	t.Run("cancelled", func(t *testing.T) {
		f := mustNew(t, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		epochs := 0
		st, err := f.Train(ctx, x, 64, TrainConfig{MaxEpochs: 1000, Batch: 8, Progress: func(e, total int, _ float64) {
			epochs = e
			if e == 2 {
				cancel()
			}
		}})
		if !errors.Is(err, context.Canceled) || st.StopReason != StopCancelled || epochs != 2 {
			t.Fatalf("err %v, reason %q after %d epochs", err, st.StopReason, epochs)
		}
	})
	t.Run("plateau", func(t *testing.T) {
		f := mustNew(t, cfg)
		// A MinDelta no epoch can beat makes every epoch after the first a
		// non-improvement.
		st, err := f.Train(context.Background(), x, 64, TrainConfig{MaxEpochs: 50, Batch: 8, Patience: 3, MinDelta: 100})
		if err != nil || st.StopReason != StopPlateau || st.Epochs != 4 {
			t.Fatalf("err %v, reason %q, epochs %d; want plateau after 4", err, st.StopReason, st.Epochs)
		}
	})
	t.Run("validation restores best", func(t *testing.T) {
		f := mustNew(t, cfg)
		val := randBatch(rand.New(rand.NewPCG(14, 14)), 16, 8, 3) // different scale: val loss rises while training fits x
		st, err := f.Train(context.Background(), x, 64, TrainConfig{
			Adam: AdamConfig{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}, MaxEpochs: 15, Batch: 8, Val: val, ValN: 16})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Loss(val, 16); math.Abs(got-st.BestLoss) > 1e-6 || len(st.ValLoss) != st.Epochs {
			t.Fatalf("val loss after training %v, best %v at epoch %d", got, st.BestLoss, st.BestEpoch)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		f := mustNew(t, cfg)
		bad := append([]float32(nil), x...)
		bad[17] = float32(math.NaN())
		for _, tc := range []struct {
			name string
			x    []float32
			n    int
			c    TrainConfig
		}{
			{"short", x[:10], 64, TrainConfig{MaxEpochs: 1, Batch: 8}},
			{"NaN", bad, 64, TrainConfig{MaxEpochs: 1, Batch: 8}},
			{"no epochs", x, 64, TrainConfig{Batch: 8}},
			{"no batch", x, 64, TrainConfig{MaxEpochs: 1}},
			{"bad adam", x, 64, TrainConfig{MaxEpochs: 1, Batch: 8, Adam: AdamConfig{LR: -1, Eps: 1}}},
		} {
			if _, err := f.Train(context.Background(), tc.x, tc.n, tc.c); err == nil {
				t.Errorf("%s: no error", tc.name)
			}
		}
	})
}

func TestAdamWeightDecay(t *testing.T) {
	// With zero gradient, L2 decay still moves weights through Adam's
	// normalised step (about LR per step), while decoupled decay shrinks
	// them by the factor 1 - LR*WD.
	mk := func() []Param {
		return []Param{{Name: "w", Shape: []int{2}, Data: []float32{1, -2}, Grad: []float32{0, 0}}}
	}
	l2, dec := mk(), mk()
	a, err := NewAdam(l2, AdamConfig{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewAdam(dec, AdamConfig{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, Decoupled: true})
	a.Step()
	b.Step()
	if math.Abs(float64(l2[0].Data[0])-0.99) > 1e-5 || math.Abs(float64(l2[0].Data[1])+1.99) > 1e-5 {
		t.Fatalf("L2 decay step gave %v", l2[0].Data)
	}
	if math.Abs(float64(dec[0].Data[0])-0.999) > 1e-6 || math.Abs(float64(dec[0].Data[1])+1.998) > 1e-6 {
		t.Fatalf("decoupled decay step gave %v", dec[0].Data)
	}
	if a.Steps() != 1 {
		t.Fatalf("Steps %d", a.Steps())
	}
}

func TestExp32(t *testing.T) {
	for x := float32(-20); x <= 20; x += 0.001 {
		want := math.Exp(float64(x))
		if got := float64(exp32(x)); math.Abs(got-want) > 3e-7*want {
			t.Fatalf("exp32(%v) = %v, want %v", x, got, want)
		}
	}
	if exp32(100) != float32(math.Inf(1)) || exp32(-100) != 0 {
		t.Fatal("exp32 out of range")
	}
}
