package evalstats

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"
)

func normals(r *rand.Rand, n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = r.NormFloat64()
	}
	return x
}

func TestThresholdAtFRRRule(t *testing.T) {
	oneTo := func(n int) []float64 {
		x := make([]float64, n)
		for i := range x {
			x[i] = float64(n - i) // unsorted on purpose
		}
		return x
	}
	tests := []struct {
		name   string
		scores []float64
		frr    float64
		want   float64
	}{
		{"20 scores, 5%: one above", oneTo(20), 0.05, 19},
		{"20 scores, 10%: two above", oneTo(20), 0.10, 18},
		{"20 scores, 7%: 1.4 allowed, one above", oneTo(20), 0.07, 19},
		{"FRR 0 is the maximum", oneTo(20), 0, 20},
		{"16 scores, 1%: cannot resolve, maximum", oneTo(16), 0.01, 16},
		{"single score", []float64{3}, 0.5, 3},
		{"ties at the cut", []float64{1, 2, 2, 2, 5}, 0.2, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ThresholdAtFRR(tc.scores, tc.frr)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("threshold = %v, want %v", got, tc.want)
			}
		})
	}
}

// The rule's two promises on random data: at most targetFRR above, and no
// smaller sample value would keep that promise.
func TestThresholdAtFRRIsSmallestFeasible(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for range 200 {
		n := 1 + r.IntN(60)
		x := normals(r, n)
		for i := range x {
			x[i] = math.Round(x[i]*4) / 4 // ties
		}
		f := r.Float64() * 0.5
		th, err := ThresholdAtFRR(x, f)
		if err != nil {
			t.Fatal(err)
		}
		if a := CountAbove(x, th); float64(a) > f*float64(n)+1e-9 {
			t.Fatalf("n=%d f=%.3f: %d above %v, allowed %.2f", n, f, a, th, f*float64(n))
		}
		for _, v := range x {
			if v < th && float64(CountAbove(x, v)) <= f*float64(n)+1e-9 {
				t.Fatalf("n=%d f=%.3f: %v < threshold %v also satisfies the target", n, f, v, th)
			}
		}
	}
}

func TestThresholdLargeNormalSample(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	x := normals(r, 10000)
	z95 := distuv.UnitNormal.Quantile(0.95) // 1.6449
	emp, err := ThresholdAtFRR(x, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	// The 0.95 sample quantile of 10000 normals has sd ~0.021.
	if math.Abs(emp-z95) > 0.08 {
		t.Errorf("empirical threshold %v, want ~%v", emp, z95)
	}
	for _, m := range []ThresholdMethod{MethodGaussian, MethodAuto} {
		info, err := ChooseThreshold(x, 0.05, m)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(info.Value-z95) > 0.08 {
			t.Errorf("%s: threshold %v, want ~%v", m, info.Value, z95)
		}
		if math.Abs(info.EmpiricalFRR-0.05) > 0.01 {
			t.Errorf("%s: empirical FRR %v, want ~0.05", m, info.EmpiricalFRR)
		}
	}
	// Auto has 500 scores in the tail, so it must use them directly.
	info, _ := ChooseThreshold(x, 0.05, MethodAuto)
	if info.Method != MethodEmpirical || info.Value != emp {
		t.Errorf("auto chose %s %v, want empirical %v", info.Method, info.Value, emp)
	}
	lx := make([]float64, len(x))
	for i, v := range x {
		lx[i] = math.Exp(v)
	}
	info, err = ChooseThreshold(lx, 0.05, MethodLogNormal)
	if err != nil {
		t.Fatal(err)
	}
	if want := math.Exp(z95); math.Abs(info.Value/want-1) > 0.08 {
		t.Errorf("log-normal threshold %v, want ~%v", info.Value, want)
	}
}

// With 16 parts the prediction bound should reject new good parts at the
// target rate on average; averaged over many calibrations it must land close.
func TestThresholdSmallSampleCalibrated(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	const reps = 4000
	for _, f := range []float64{0.05, 0.01} {
		var sumFRR, sumPlugIn float64
		for range reps {
			x := normals(r, 16)
			info, err := ChooseThreshold(x, f, MethodGaussian)
			if err != nil {
				t.Fatal(err)
			}
			sumFRR += 1 - distuv.UnitNormal.CDF(info.Value)
			plug := Mean(x) + StdDev(x)*distuv.UnitNormal.Quantile(1-f)
			sumPlugIn += 1 - distuv.UnitNormal.CDF(plug)
		}
		got, plug := sumFRR/reps, sumPlugIn/reps
		t.Logf("target %.2f: prediction bound gives mean FRR %.4f, plug-in normal quantile %.4f", f, got, plug)
		if math.Abs(got-f) > 0.15*f {
			t.Errorf("target %v: mean out-of-sample FRR %v", f, got)
		}
	}
}

func TestChooseThresholdAuto(t *testing.T) {
	r := rand.New(rand.NewPCG(27, 28))
	pos := make([]float64, 16)
	for i := range pos {
		pos[i] = math.Exp(r.NormFloat64())
	}
	tests := []struct {
		name   string
		scores []float64
		frr    float64
		want   ThresholdMethod
		note   string
	}{
		{"16 positive scores, 1%", pos, 0.01, MethodLogNormal, "extrapolated"},
		{"16 signed scores, 1%", normals(r, 16), 0.01, MethodGaussian, "extrapolated"},
		{"1000 scores, 5%", normals(r, 1000), 0.05, MethodEmpirical, "order statistic"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info, err := ChooseThreshold(tc.scores, tc.frr, MethodAuto)
			if err != nil {
				t.Fatal(err)
			}
			if info.Method != tc.want || info.N != len(tc.scores) || info.TargetFRR != tc.frr {
				t.Errorf("got %+v, want method %s", info, tc.want)
			}
			if !strings.Contains(info.Note, tc.note) {
				t.Errorf("note %q lacks %q", info.Note, tc.note)
			}
			if want := float64(CountAbove(tc.scores, info.Value)) / float64(len(tc.scores)); info.EmpiricalFRR != want {
				t.Errorf("EmpiricalFRR %v, counted %v", info.EmpiricalFRR, want)
			}
		})
	}
	// 16 scores cannot resolve 1% empirically: the note must say so.
	info, err := ChooseThreshold(pos, 0.01, MethodEmpirical)
	if err != nil {
		t.Fatal(err)
	}
	if info.Value != Quantile(pos, 1) || !strings.Contains(info.Note, "maximum") {
		t.Errorf("empirical 1%% of 16: %+v", info)
	}
	// The extrapolated 1% threshold must lie beyond every observed score.
	ln, _ := ChooseThreshold(pos, 0.01, MethodLogNormal)
	if ln.Value <= Quantile(pos, 1) || ln.EmpiricalFRR != 0 {
		t.Errorf("log-normal 1%% of 16: %+v, max score %v", ln, Quantile(pos, 1))
	}
}

// MethodGaussianEmpirical is the normal until MinOrderTail scores lie beyond
// the target quantile, the order statistic from there; parsed back from a
// manifest, it resolves for each rate by itself.
func TestChooseThresholdGaussianEmpirical(t *testing.T) {
	r := rand.New(rand.NewPCG(29, 30))
	// A narrow body and a long tail, as patch scores have: the normal's
	// 1% point of 400 of them lies well inside the last four.
	heavy := make([]float64, 400)
	for i := range heavy {
		heavy[i] = math.Exp(0.6 * r.NormFloat64())
	}
	tests := []struct {
		name   string
		scores []float64
		frr    float64
		want   ThresholdMethod
	}{
		{"16 scores, 5%", heavy[:16], 0.05, MethodGaussian},
		{"399 scores, 1%: 3.99 beyond", heavy[:399], 0.01, MethodGaussian},
		{"400 scores, 1%: 4 beyond", heavy, 0.01, MethodEmpirical},
		{"100 scores, 5%", heavy[:100], 0.05, MethodEmpirical},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info, err := ChooseThreshold(tc.scores, tc.frr, MethodGaussianEmpirical)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := ChooseThreshold(tc.scores, tc.frr, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if info.Method != tc.want || info.Value != plain.Value {
				t.Errorf("got %s %v, want %s %v", info.Method, info.Value, tc.want, plain.Value)
			}
			if !strings.Contains(info.Note, string(tc.want)) {
				t.Errorf("note %q does not say %s", info.Note, tc.want)
			}
		})
	}
	if g, _ := ChooseThreshold(heavy, 0.01, MethodGaussian); !(g.EmpiricalFRR > 0.02) {
		t.Errorf("the normal's 1%% point of long-tailed scores leaves %v above it: the test shows nothing", g.EmpiricalFRR)
	}
	m, err := ParseThresholdMethod("loo-" + string(MethodGaussianEmpirical))
	if err != nil || m != MethodGaussianEmpirical {
		t.Fatalf("parsed %q, %v", m, err)
	}
	v, err := ThresholdForFRR(heavy, 0.05, m)
	if e, _ := ChooseThreshold(heavy, 0.05, MethodEmpirical); err != nil || v != e.Value {
		t.Errorf("threshold for 5%% of 400: %v (%v), want the order statistic %v", v, err, e.Value)
	}
	if p, err := PredictFRR(heavy, v, m); err != nil || !(p > 0 && p < 1) {
		t.Errorf("predicted FRR %v, %v", p, err)
	}
}

func TestThresholdErrors(t *testing.T) {
	tests := []struct {
		name   string
		scores []float64
		frr    float64
		method ThresholdMethod
	}{
		{"no scores", nil, 0.05, MethodEmpirical},
		{"NaN score", []float64{1, math.NaN(), 2}, 0.05, MethodEmpirical},
		{"Inf score", []float64{1, math.Inf(1), 2}, 0.05, MethodEmpirical},
		{"negative FRR", []float64{1, 2, 3}, -0.1, MethodEmpirical},
		{"FRR 1", []float64{1, 2, 3}, 1, MethodEmpirical},
		{"log-normal of non-positive", []float64{0, 1, 2, 3}, 0.05, MethodLogNormal},
		{"gaussian of 2", []float64{1, 2}, 0.05, MethodGaussian},
		{"gaussian of equal scores", []float64{2, 2, 2, 2}, 0.05, MethodGaussian},
		{"gaussian at FRR 0", []float64{1, 2, 3, 4}, 0, MethodGaussian},
		{"unknown method", []float64{1, 2, 3}, 0.05, "bayes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ChooseThreshold(tc.scores, tc.frr, tc.method); err == nil {
				t.Error("ChooseThreshold: want error")
			}
		})
	}
	if _, err := ThresholdAtFRR(nil, 0.05); err == nil {
		t.Error("ThresholdAtFRR(nil): want error")
	}
}
