package evalstats

import (
	"math"
	"slices"
	"testing"
)

func TestQuantiles(t *testing.T) {
	x := []float64{4, 1, 3, 2} // sorted: 1 2 3 4
	orig := slices.Clone(x)
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"median even", Median(x), 2.5},
		{"median odd", Median([]float64{5, 1, 3}), 3},
		{"q0.25 type 7: 1 + 0.75*(2-1)", Quantile(x, 0.25), 1.75},
		{"q0 min", Quantile(x, 0), 1},
		{"q1 max", Quantile(x, 1), 4},
		{"p90: 3 + 0.7*(4-3)", Percentile(x, 90), 3.7},
		{"mean", Mean(x), 2.5},
		{"sample sd of 1..4", StdDev(x), math.Sqrt(5.0 / 3)},
	}
	for _, tc := range tests {
		if math.Abs(tc.got-tc.want) > 1e-12 {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if !slices.Equal(x, orig) {
		t.Errorf("input modified: %v", x)
	}
	for name, v := range map[string]float64{
		"median of none": Median(nil), "q>1": Quantile(x, 1.5), "sd of one": StdDev([]float64{1}), "mean of none": Mean(nil),
	} {
		if !math.IsNaN(v) {
			t.Errorf("%s = %v, want NaN", name, v)
		}
	}
}
