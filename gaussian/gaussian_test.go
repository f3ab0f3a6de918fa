package gaussian

import (
	"errors"
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// sample draws n vectors from N(mu, A A^T).
func sample(r *rand.Rand, n int, mu []float64, A *mat.Dense) []float32 {
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
	return x
}

var (
	testA = mat.NewDense(4, 4, []float64{
		2, 0, 0, 0,
		0.8, 0.6, 0, 0,
		-0.5, 0.4, 1.1, 0,
		0.3, -0.9, 0.2, 0.4,
	})
	testMu = []float64{1, -2, 0.5, 10}
)

// covariance recovers Sigma = (W^T W)^-1 from the stored factor.
func covariance(t *testing.T, m *Model) *mat.Dense {
	t.Helper()
	d := m.Dim()
	w := mat.NewDense(d, d, nil)
	for i := 0; i < d; i++ {
		for j := 0; j < d; j++ {
			w.Set(i, j, float64(m.precChol[i*d+j]))
		}
	}
	var prec, cov mat.Dense
	prec.Mul(w.T(), w)
	if err := cov.Inverse(&prec); err != nil {
		t.Fatal(err)
	}
	return &cov
}

func TestFitConverges(t *testing.T) {
	var trueCov mat.Dense
	trueCov.Mul(testA, testA.T())
	r := rand.New(rand.NewPCG(1, 1))
	var prevErr float64 = math.Inf(1)
	for _, n := range []int{100, 1000, 20000} {
		m, err := Fit(sample(r, n, testMu, testA), n, 4)
		if err != nil {
			t.Fatal(err)
		}
		var meanErr float64
		for j, v := range m.mean {
			meanErr = max(meanErr, math.Abs(float64(v)-testMu[j]))
		}
		var diff mat.Dense
		diff.Sub(covariance(t, m), &trueCov)
		covErr := mat.Norm(&diff, 2) / mat.Norm(&trueCov, 2)
		t.Logf("n=%d: mean error %.3g, relative covariance error %.3g, shrinkage %.3g", n, meanErr, covErr, m.Shrinkage())
		// Standard errors shrink like 1/sqrt(n): 4 sigma bounds.
		if lim := 4 * 2.2 / math.Sqrt(float64(n)); meanErr > lim {
			t.Fatalf("n=%d: mean error %v > %v", n, meanErr, lim)
		}
		if covErr > 4*math.Sqrt(2/float64(n))*2 {
			t.Fatalf("n=%d: covariance error %v", n, covErr)
		}
		if covErr >= prevErr*1.2 {
			t.Fatalf("n=%d: covariance error %v did not improve on %v", n, covErr, prevErr)
		}
		prevErr = covErr
		if n == 20000 && m.Shrinkage() > 0.01 {
			t.Fatalf("shrinkage %v with plenty of data, want near 0", m.Shrinkage())
		}
	}
}

// TestShrinkageMatchesDefinition recomputes the Ledoit-Wolf weight from its
// definition, summing ||x_k x_k^T - S||_F^2 explicitly.
func TestShrinkageMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	const n, d = 12, 9
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(r.NormFloat64() * float64(1+i%d))
	}
	m, err := Fit(x, n, d)
	if err != nil {
		t.Fatal(err)
	}
	mean := make([]float64, d)
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			mean[j] += float64(x[i*d+j]) / n
		}
	}
	xc := mat.NewDense(n, d, nil)
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			xc.Set(i, j, float64(x[i*d+j])-mean[j])
		}
	}
	var s mat.Dense
	s.Mul(xc.T(), xc)
	s.Scale(1.0/n, &s)
	mu := mat.Trace(&s) / d
	var target, dd mat.Dense
	target.Scale(mu, eye(d))
	dd.Sub(&s, &target)
	delta2 := math.Pow(mat.Norm(&dd, 2), 2) / d
	var beta2 float64
	for k := 0; k < n; k++ {
		row := xc.RowView(k)
		var outer, diff mat.Dense
		outer.Outer(1, row, row)
		diff.Sub(&outer, &s)
		beta2 += math.Pow(mat.Norm(&diff, 2), 2) / d
	}
	beta2 /= n * n
	want := min(beta2, delta2) / delta2
	if math.Abs(m.Shrinkage()-want) > 1e-5 || want <= 0 || want >= 1 {
		t.Fatalf("shrinkage %v, definition gives %v", m.Shrinkage(), want)
	}
}

func eye(d int) *mat.Dense {
	m := mat.NewDense(d, d, nil)
	for i := 0; i < d; i++ {
		m.Set(i, i, 1)
	}
	return m
}

func TestScoreIsMahalanobis(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	m, err := Fit(sample(r, 50, testMu, testA), 50, 4)
	if err != nil {
		t.Fatal(err)
	}
	cov := covariance(t, m)
	var prec mat.Dense
	if err := prec.Inverse(cov); err != nil {
		t.Fatal(err)
	}
	x := sample(r, 5, testMu, testA)
	scores := m.Score(x, 5)
	for i := 0; i < 5; i++ {
		dv := mat.NewVecDense(4, nil)
		for j := 0; j < 4; j++ {
			dv.SetVec(j, float64(x[i*4+j]-m.mean[j]))
		}
		want := mat.Inner(dv, &prec, dv) / 4
		if math.Abs(float64(scores[i])-want) > 1e-4*(1+want) {
			t.Fatalf("score %v, Mahalanobis/dim %v", scores[i], want)
		}
	}
}

func TestScoreGradNumeric(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	const d = 6
	x := make([]float32, 40*d)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	m, err := Fit(x, 40, d)
	if err != nil {
		t.Fatal(err)
	}
	q := x[:3*d]
	s, dx := m.ScoreGrad(q, 3)
	plain := m.Score(q, 3)
	const h = 1e-2 // the score is quadratic, so central differences are exact up to rounding
	for i := 0; i < 3; i++ {
		if s[i] != plain[i] {
			t.Fatalf("ScoreGrad score %v, Score %v", s[i], plain[i])
		}
		for j := 0; j < d; j++ {
			row := append([]float32(nil), q[i*d:(i+1)*d]...)
			row[j] += h
			sp := m.Score(row, 1)[0]
			row[j] -= 2 * h
			sm := m.Score(row, 1)[0]
			num := float64(sp-sm) / (2 * h)
			if got := float64(dx[i*d+j]); math.Abs(got-num) > 1e-3+1e-3*math.Abs(num) {
				t.Fatalf("row %d dim %d: gradient %v, numeric %v", i, j, got, num)
			}
		}
	}
}

// TestFewSamples is the calibration case: far fewer samples than dimensions.
func TestFewSamples(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	const n, d = 16, 300
	// Correlated features: a few latent factors plus noise.
	gen := func(n int, shift float64) []float32 {
		x := make([]float32, n*d)
		for i := 0; i < n; i++ {
			f1, f2 := r.NormFloat64(), r.NormFloat64()
			for j := 0; j < d; j++ {
				x[i*d+j] = float32(shift + f1*math.Sin(float64(j)) + f2*math.Cos(float64(j)/3) + 0.3*r.NormFloat64())
			}
		}
		return x
	}
	m, err := Fit(gen(n, 0), n, d)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("fitted model does not validate: %v", err)
	}
	if sh := m.Shrinkage(); sh <= 0 || sh > 1 {
		t.Fatalf("shrinkage %v, want in (0, 1] when n < dim", sh)
	}
	good := m.Score(gen(200, 0), 200)
	bad := m.Score(gen(200, 0.5), 200)
	for _, v := range append(append([]float32(nil), good...), bad...) {
		if !(v > 0) || math.IsInf(float64(v), 0) {
			t.Fatalf("score %v, want positive and finite", v)
		}
	}
	if auc := auroc(good, bad); auc < 0.99 {
		t.Fatalf("AUROC %v separating a shifted sample, want >= 0.99", auc)
	}
}

func auroc(neg, pos []float32) float64 {
	sorted := append([]float32(nil), neg...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	var wins float64
	for _, p := range pos {
		wins += float64(sort.Search(len(sorted), func(i int) bool { return sorted[i] >= p }))
	}
	return wins / float64(len(neg)*len(pos))
}

func TestParamsRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	m, err := Fit(sample(r, 30, testMu, testA), 30, 4)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(4)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Validate(); err == nil {
		t.Fatal("unfilled model validates")
	}
	for i, p := range m.Params() {
		q := g.Params()[i]
		if p.Name != q.Name || len(p.Data) != len(q.Data) {
			t.Fatalf("param %d: %s vs %s", i, p.Name, q.Name)
		}
		copy(q.Data, p.Data)
	}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	x := sample(r, 8, testMu, testA)
	a, b := m.Score(x, 8), g.Score(x, 8)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("score %d differs after round trip", i)
		}
	}
	if g.Shrinkage() != m.Shrinkage() {
		t.Fatal("shrinkage lost in round trip")
	}
	g.precChol[1] = 0.5 // above the diagonal
	if err := g.Validate(); err == nil {
		t.Fatal("upper-triangular entry accepted")
	}
}

func TestFitErrors(t *testing.T) {
	nan := []float32{1, 2, float32(math.NaN()), 4}
	tests := []struct {
		name   string
		x      []float32
		n, dim int
		is     error
	}{
		{"one sample", []float32{1, 2}, 1, 2, nil},
		{"length", []float32{1, 2, 3}, 2, 2, nil},
		{"zero dim", nil, 2, 0, nil},
		{"NaN", nan, 2, 2, nil},
		{"constant", []float32{1, 2, 1, 2, 1, 2}, 3, 2, ErrNoVariance},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Fit(tc.x, tc.n, tc.dim)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want %v", err, tc.is)
			}
		})
	}
}

func BenchmarkScoreGrad(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 7))
	const d = 1280
	x := make([]float32, 128*d)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	m, err := Fit(x, 128, d)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		m.ScoreGrad(x[:64*d], 64)
	}
}

func BenchmarkFit(b *testing.B) {
	r := rand.New(rand.NewPCG(8, 8))
	const d = 1280
	x := make([]float32, 128*d)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	for b.Loop() {
		if _, err := Fit(x, 128, d); err != nil {
			b.Fatal(err)
		}
	}
}

// With plenty of well-conditioned data (shrinkage near 0) whitened rows have
// unit variance, and
// WhitenBackward is the transpose of the whitening map (checked by
// finite differences on a linear function of the whitened rows).
func TestWhitenAndBackward(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, d = 4000, 5
	x := make([]float32, n*d)
	for i := 0; i < n; i++ {
		a, b := rng.NormFloat64(), rng.NormFloat64()
		for j := 0; j < d; j++ {
			x[i*d+j] = float32(a*float64(j+1) + 0.5*b + rng.NormFloat64())
		}
	}
	m, err := Fit(x, n, d)
	if err != nil {
		t.Fatal(err)
	}
	w := m.Whiten(x, n)
	for j := 0; j < d; j++ {
		var s float64
		for i := 0; i < n; i++ {
			s += float64(w[i*d+j]) * float64(w[i*d+j])
		}
		if v := s / n; v < 0.9 || v > 1.1 {
			t.Errorf("whitened variance of dim %d is %.3f, want about 1", j, v)
		}
	}
	g := []float32{0.3, -1, 2, 0.5, -0.7}
	dx := m.WhitenBackward(g, 1)
	row := append([]float32(nil), x[:d]...)
	f := func(r []float32) float64 {
		wr := m.Whiten(r, 1)
		var s float64
		for j := range wr {
			s += float64(g[j]) * float64(wr[j])
		}
		return s
	}
	for j := 0; j < d; j++ {
		const h = 1e-2
		p := append([]float32(nil), row...)
		q := append([]float32(nil), row...)
		p[j] += h
		q[j] -= h
		num := (f(p) - f(q)) / (2 * h)
		if diff := num - float64(dx[j]); diff > 1e-2*(1+abs(num)) || -diff > 1e-2*(1+abs(num)) {
			t.Errorf("dim %d: backward %g, numeric %g", j, dx[j], num)
		}
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}
