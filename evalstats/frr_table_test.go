package evalstats

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestPredictFRRInvertsTheThreshold(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	good := make([]float64, 16)
	for i := range good {
		good[i] = math.Exp(rng.NormFloat64()*0.3 + 1)
	}
	for _, m := range []ThresholdMethod{MethodGaussian, MethodLogNormal} {
		for _, f := range []float64{0.01, 0.02, 0.05, 0.2} {
			info, err := ChooseThreshold(good, f, m)
			if err != nil {
				t.Fatal(err)
			}
			p, err := PredictFRR(good, info.Value, m)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(p-f) > 1e-9 {
				t.Errorf("%s: threshold for %v predicts %v", m, f, p)
			}
		}
	}
	// Empirical: 3 of 16 scores above t -> (3+1)/17 for a new part.
	s := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	if p, _ := PredictFRR(s, 13, MethodEmpirical); math.Abs(p-4.0/17) > 1e-12 {
		t.Errorf("empirical prediction %v, want 4/17", p)
	}
}

func TestFRRTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	good := make([]float64, 16)
	for i := range good {
		good[i] = math.Exp(rng.NormFloat64()*0.4 + 2)
	}
	targets := []float64{0.01, 0.02, 0.05}
	rows, err := FRRTable(good, targets, MethodLogNormal, 7)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := FRRTable(good, targets, MethodLogNormal, 7)
	for i, r := range rows {
		if r != again[i] {
			t.Fatalf("table not deterministic for a seed: %+v vs %+v", r, again[i])
		}
		if r.TargetFRR != targets[i] || math.Abs(r.PredictedFRR-r.TargetFRR) > 1e-9 {
			t.Errorf("row %d: %+v", i, r)
		}
		if !(r.Low <= r.PredictedFRR && r.PredictedFRR <= r.High) || !(r.High > r.Low) {
			t.Errorf("row %d: band [%v, %v] around %v", i, r.Low, r.High, r.PredictedFRR)
		}
		if i > 0 && !(r.Threshold < rows[i-1].Threshold) {
			t.Errorf("threshold for %v (%v) not below the one for %v (%v)", r.TargetFRR, r.Threshold, rows[i-1].TargetFRR, rows[i-1].Threshold)
		}
	}
}

func TestAutoPicksTheBetterFittingTail(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	logn := make([]float64, 40)
	norm := make([]float64, 40)
	for i := range logn {
		logn[i] = math.Exp(rng.NormFloat64() * 0.8)
		norm[i] = 2 + 0.8*rng.NormFloat64()
	}
	for _, tc := range []struct {
		name string
		s    []float64
		want ThresholdMethod
	}{{"log-normal scores", logn, MethodLogNormal}, {"normal scores", norm, MethodGaussian}} {
		info, err := ChooseThreshold(tc.s, 0.01, MethodAuto)
		if err != nil {
			t.Fatal(err)
		}
		if info.Method != tc.want {
			t.Errorf("%s: auto chose %s, want %s", tc.name, info.Method, tc.want)
		}
	}
}
