package evalstats

import (
	"math"
	"strings"
	"testing"
)

func TestThresholdForFRR(t *testing.T) {
	good := []float64{1, 1.2, 1.5, 1.1, 0.9, 1.3, 1.05, 1.4, 0.95, 1.25, 1.15, 1.35, 1.0, 1.45, 1.2, 1.1}
	logn, _ := ChooseThreshold(good, 0.01, MethodLogNormal)
	emp, _ := ChooseThreshold(good, 0.25, MethodEmpirical)
	for _, tc := range []struct {
		name    string
		good    []float64
		frr     float64
		method  ThresholdMethod
		want    float64
		wantErr string
	}{
		{"lognormal 1%", good, 0.01, MethodLogNormal, logn.Value, ""},
		{"empirical 25%", good, 0.25, MethodEmpirical, emp.Value, ""},
		{"auto follows ChooseThreshold", good, 0.01, MethodAuto, logn.Value, ""},
		{"zero FRR", good, 0, MethodLogNormal, 0, "want 0 < FRR < 1"},
		{"FRR 1", good, 1, MethodLogNormal, 0, "want 0 < FRR < 1"},
		{"NaN FRR", good, math.NaN(), MethodLogNormal, 0, "want 0 < FRR < 1"},
		{"no scores", nil, 0.01, MethodLogNormal, 0, "no good scores"},
		{"unknown method", good, 0.01, "gpd", 0, "unknown method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ThresholdForFRR(tc.good, tc.frr, tc.method)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	lo, _ := ThresholdForFRR(good, 0.05, MethodLogNormal)
	hi, _ := ThresholdForFRR(good, 0.01, MethodLogNormal)
	if !(lo < hi) {
		t.Errorf("threshold at 5%% (%v) not below the one at 1%% (%v)", lo, hi)
	}
}

func TestParseThresholdMethod(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ThresholdMethod
		err  bool
	}{
		{"kfold-lognormal", MethodLogNormal, false},
		{"kfold-empirical", MethodEmpirical, false},
		{"gaussian", MethodGaussian, false},
		{"", MethodAuto, false},
		{"override", "", true},
		{"kfold-gpd", "", true},
	} {
		got, err := ParseThresholdMethod(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseThresholdMethod(%q) = %q, %v", tc.in, got, err)
		}
	}
}
