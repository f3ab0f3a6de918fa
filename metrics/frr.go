package metrics

import (
	"fmt"
	"strings"
)

// ThresholdForFRR is the threshold for a requested false-reject rate from
// out-of-sample good scores, with the tail method a model's manifest records
// (see ParseThresholdMethod). It is the one entry point the daemon's
// INSPECTD_FRR override uses, so a better tail method in ChooseThreshold is
// followed at run time without changes there.
func ThresholdForFRR(good []float64, frr float64, method ThresholdMethod) (float64, error) {
	if !(frr > 0 && frr < 1) {
		return 0, fmt.Errorf("metrics: threshold for FRR %v: want 0 < FRR < 1", frr)
	}
	info, err := ChooseThreshold(good, frr, method)
	if err != nil {
		return 0, fmt.Errorf("metrics: threshold for FRR %v: %w", frr, err)
	}
	return info.Value, nil
}

// ParseThresholdMethod reads the tail method from a manifest's threshold
// method, which calibration writes as "<how the scores were made>-<method>"
// (e.g. "kfold-lognormal"). An empty string is MethodAuto; a method this
// package does not know is an error naming it.
func ParseThresholdMethod(manifest string) (ThresholdMethod, error) {
	s := manifest
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		s = s[i+1:]
	}
	switch m := ThresholdMethod(s); m {
	case "":
		return MethodAuto, nil
	case MethodEmpirical, MethodGaussian, MethodLogNormal, MethodAuto:
		return m, nil
	}
	return "", fmt.Errorf("metrics: threshold method %q (from %q) is not one of empirical, gaussian, lognormal, auto", s, manifest)
}
