package evalstats

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"gonum.org/v1/gonum/stat/distuv"
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

// How calibration made the out-of-sample good scores: the prefix of a
// manifest's threshold method.
const (
	ScoresLeaveOneOut = "loo-"   // each good part scored by the final model without its own data
	ScoresKFold       = "kfold-" // each good part scored by a fold model that never saw it
)

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
	case MethodEmpirical, MethodGaussian, MethodLogNormal, MethodAuto, MethodGaussianEmpirical:
		return m, nil
	}
	return "", fmt.Errorf("metrics: threshold method %q (from %q) is not one of empirical, gaussian, lognormal, auto, gaussian+empirical", s, manifest)
}

// FRRRow is one line of a threshold table: the threshold for a target
// false-reject rate and the rate the fitted tail model predicts there, with
// an 80% band from refits on bootstrap resamples of the good scores (what
// sixteen numbers can and cannot say about a 1% tail).
type FRRRow struct {
	TargetFRR    float64 `json:"target_frr"`
	Threshold    float64 `json:"threshold"`
	PredictedFRR float64 `json:"predicted_frr"`
	Low          float64 `json:"predicted_frr_low"`
	High         float64 `json:"predicted_frr_high"`
}

// PredictFRR is the false-reject rate the tail model fitted to good
// predicts at threshold t: the share of new good parts whose score exceeds
// t, under the same predictive distribution ChooseThreshold inverts (Student
// t on the scores or their logs); the empirical method gives the share of
// good scores above t, counted as (k+1)/(n+1)-style for a new part.
func PredictFRR(good []float64, t float64, method ThresholdMethod) (float64, error) {
	s, err := checkGood(good, 0)
	if err != nil {
		return 0, err
	}
	m := method
	if m == "" || m == MethodAuto || m == MethodGaussianEmpirical {
		// Only the rules that resolve on the sample (auto, gaussian+empirical)
		// need ChooseThreshold's choice, made as for the 1% target; a named
		// method (what FRRTable's bootstrap passes, hundreds of times) is
		// used as it is.
		if m, err = resolveMethod(s, 0.01, method); err != nil {
			return 0, err
		}
	}
	n := len(s)
	switch m {
	case MethodEmpirical:
		above := n - countAtMost(s, t)
		return float64(above+1) / float64(n+1), nil
	case MethodGaussian, MethodLogNormal:
		x := s
		if m == MethodLogNormal {
			if t <= 0 {
				return 1, nil
			}
			x = make([]float64, n)
			for i, v := range s {
				x[i] = math.Log(v)
			}
			t = math.Log(t)
		}
		if n < 3 {
			return 0, fmt.Errorf("metrics: predicted FRR: need at least 3 scores, have %d", n)
		}
		sd := StdDev(x)
		if !(sd > 0) {
			return 0, errors.New("metrics: predicted FRR: all scores are equal")
		}
		st := distuv.StudentsT{Mu: Mean(x), Sigma: sd * math.Sqrt(1+1/float64(n)), Nu: float64(n - 1)}
		return 1 - st.CDF(t), nil
	}
	return 0, fmt.Errorf("metrics: predicted FRR: unknown method %q", m)
}

// resolveMethod turns MethodAuto into the method ChooseThreshold would use.
func resolveMethod(sorted []float64, frr float64, method ThresholdMethod) (ThresholdMethod, error) {
	info, err := ChooseThreshold(sorted, max(frr, 1e-6), method)
	if err != nil {
		return "", err
	}
	return info.Method, nil
}

// bootstrapRounds is enough for a stable 80% band and cheap at n = 16.
const bootstrapRounds = 400

// FRRTable gives a row per target rate (for example 1%, 2%, 5%), so an
// engineer can choose an operating point knowing what each costs.
func FRRTable(good []float64, targets []float64, method ThresholdMethod, seed uint64) ([]FRRRow, error) {
	rng := rand.New(rand.NewPCG(seed, 0xf11))
	var rows []FRRRow
	for _, f := range targets {
		info, err := ChooseThreshold(good, f, method)
		if err != nil {
			return nil, err
		}
		p, err := PredictFRR(good, info.Value, info.Method)
		if err != nil {
			return nil, err
		}
		row := FRRRow{TargetFRR: f, Threshold: info.Value, PredictedFRR: p, Low: p, High: p}
		boot := make([]float64, 0, bootstrapRounds)
		res := make([]float64, len(good))
		for range bootstrapRounds {
			for i := range res {
				res[i] = good[rng.IntN(len(good))]
			}
			if q, err := PredictFRR(res, info.Value, info.Method); err == nil {
				boot = append(boot, q)
			}
		}
		if len(boot) > 0 {
			row.Low, row.High = Quantile(boot, 0.1), Quantile(boot, 0.9)
		}
		rows = append(rows, row)
	}
	return rows, nil
}
