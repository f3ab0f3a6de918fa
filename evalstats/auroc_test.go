package evalstats

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestAUROCHandCounted(t *testing.T) {
	tests := []struct {
		name   string
		scores []float64
		labels []bool
		want   float64
	}{
		{"all correct", []float64{0.1, 0.2, 0.8, 0.9}, []bool{false, false, true, true}, 1},
		{"reversed", []float64{0.9, 0.8, 0.2, 0.1}, []bool{false, false, true, true}, 0},
		{"all tied", []float64{3, 3, 3, 3, 3}, []bool{false, true, false, true, true}, 0.5},
		// Defective {0.35, 0.8} vs good {0.1, 0.4}: 0.35>0.1, 0.35<0.4,
		// 0.8>0.1, 0.8>0.4 -> 3 of 4 pairs.
		{"mixed", []float64{0.1, 0.4, 0.35, 0.8}, []bool{false, false, true, true}, 0.75},
		// Defective {0.5, 0.7} vs good {0.5, 0.2, 0.9}: 0.5=0.5 (half),
		// 0.5>0.2, 0.5<0.9, 0.7>0.5, 0.7>0.2, 0.7<0.9 -> 3.5 of 6 pairs.
		{"mixed with tie", []float64{0.5, 0.7, 0.5, 0.2, 0.9}, []bool{true, true, false, false, false}, 3.5 / 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AUROC(tc.scores, tc.labels)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("AUROC = %v, want %v", got, tc.want)
			}
		})
	}
}

// bruteAUROC counts every pair; the reference for randomized checks.
func bruteAUROC(scores []float64, labels []bool) float64 {
	var wins, pairs float64
	for i := range scores {
		if !labels[i] {
			continue
		}
		for j := range scores {
			if labels[j] {
				continue
			}
			pairs++
			switch {
			case scores[i] > scores[j]:
				wins++
			case scores[i] == scores[j]:
				wins += 0.5
			}
		}
	}
	return wins / pairs
}

func randomScored(r *rand.Rand, n int, quantize float64) ([]float64, []bool) {
	s := make([]float64, n)
	l := make([]bool, n)
	for i := range s {
		l[i] = r.IntN(3) == 0
		v := r.NormFloat64()
		if l[i] {
			v += 0.8
		}
		if quantize > 0 { // force many ties
			v = math.Round(v/quantize) * quantize
		}
		s[i] = v
	}
	l[0], l[1] = true, false
	return s, l
}

func TestAUROCMatchesPairCount(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, q := range []float64{0, 0.5, 0.1} {
		s, l := randomScored(r, 700, q)
		got, err := AUROC(s, l)
		if err != nil {
			t.Fatal(err)
		}
		if want := bruteAUROC(s, l); math.Abs(got-want) > 1e-12 {
			t.Errorf("quantize %v: AUROC = %v, pair count %v", q, got, want)
		}
	}
}

func TestAUROCErrors(t *testing.T) {
	tests := []struct {
		name   string
		scores []float64
		labels []bool
	}{
		{"length mismatch", []float64{1, 2}, []bool{true}},
		{"no defective", []float64{1, 2}, []bool{false, false}},
		{"no good", []float64{1, 2}, []bool{true, true}},
		{"empty", nil, nil},
		{"NaN", []float64{1, math.NaN()}, []bool{true, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := AUROC(tc.scores, tc.labels); err == nil {
				t.Error("AUROC: want error")
			}
			if _, err := ROC(tc.scores, tc.labels); err == nil {
				t.Error("ROC: want error")
			}
		})
	}
}

func TestROCShape(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, q := range []float64{0, 0.25} {
		s, l := randomScored(r, 500, q)
		pts, err := ROC(s, l)
		if err != nil {
			t.Fatal(err)
		}
		if p := pts[0]; p.FPR != 0 || p.TPR != 0 || !math.IsInf(p.Threshold, 1) {
			t.Errorf("first point %+v, want (0,0,+Inf)", p)
		}
		if p := pts[len(pts)-1]; p.FPR != 1 || p.TPR != 1 {
			t.Errorf("last point %+v, want (1,1)", p)
		}
		var area float64
		for i := 1; i < len(pts); i++ {
			a, b := pts[i-1], pts[i]
			if b.FPR < a.FPR || b.TPR < a.TPR || b.Threshold >= a.Threshold {
				t.Fatalf("point %d %+v after %+v: rates must not fall, thresholds must fall", i, b, a)
			}
			area += (b.FPR - a.FPR) * (a.TPR + b.TPR) / 2
		}
		// Trapezoids over tied groups give ties half credit, as AUROC does.
		auc, _ := AUROC(s, l)
		if math.Abs(area-auc) > 1e-12 {
			t.Errorf("quantize %v: ROC area %v != AUROC %v", q, area, auc)
		}
	}
}

func BenchmarkAUROC1M(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	s, l := randomScored(r, 1_000_000, 0)
	b.ResetTimer()
	for b.Loop() {
		if _, err := AUROC(s, l); err != nil {
			b.Fatal(err)
		}
	}
}
