package evalstats

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"
)

// ThresholdMethod names how a threshold was derived from good-part scores.
type ThresholdMethod string

const (
	// MethodEmpirical takes an order statistic of the scores (ThresholdAtFRR).
	MethodEmpirical ThresholdMethod = "empirical"
	// MethodGaussian fits a normal distribution to the scores and takes the
	// Student-t prediction quantile for one new score.
	MethodGaussian ThresholdMethod = "gaussian"
	// MethodLogNormal does the same on log(score); needs positive scores.
	// DifferNet scores (mean z^2) are positive and right-skewed, which a
	// log-normal follows better than a normal.
	MethodLogNormal ThresholdMethod = "lognormal"
	// MethodAuto picks empirical when the sample holds at least
	// MinTailSamples scores beyond the target quantile, else whichever of
	// log-normal (positive scores only) and Gaussian fits the scores better
	// by likelihood.
	MethodAuto ThresholdMethod = "auto"
	// MethodGaussianEmpirical is MethodGaussian until at least
	// MinOrderTail scores lie beyond the target quantile, then
	// MethodEmpirical: a normal fitted to scores with a narrow body and a
	// long tail (the patch methods') extrapolates a tail too short, which
	// more scores do not cure, while the order statistic's only fault is
	// its spread, which they do.
	MethodGaussianEmpirical ThresholdMethod = "gaussian+empirical"
)

// MinOrderTail is how many good scores MethodGaussianEmpirical wants beyond
// the target quantile before it takes the order statistic: with k beyond
// it, the false-reject rate it gives new parts lies between about 0.6 and
// 2 times the target in 80% of calibrations for k = 4 (a Gamma(k+1)
// spread), the factor of 2 an operating point is asked to keep.
const MinOrderTail = 4

// MinTailSamples is how many good scores MethodAuto wants above the threshold
// before it trusts an order statistic: with fewer, the empirical quantile
// rests on one or two extreme parts and moves a lot between calibrations.
const MinTailSamples = 10

// ThresholdInfo records how a threshold was chosen, to store with a model.
type ThresholdInfo struct {
	Value     float64         // reject when score > Value
	Method    ThresholdMethod // never MethodAuto: the method actually used
	TargetFRR float64         // requested false-reject rate
	N         int             // number of good scores used
	// EmpiricalFRR is the fraction of the given good scores above Value. For
	// out-of-sample scores it estimates the real FRR; with small N it is
	// coarse (multiples of 1/N).
	EmpiricalFRR float64
	Note         string // why this method, and what the sample can support
}

// ThresholdAtFRR returns the smallest threshold t such that at most
// targetFRR of goodScores are strictly above t. Rule: with the scores sorted
// ascending x(1) <= ... <= x(n) and m = ceil((1-targetFRR)*n), t = x(m), so
// floor(targetFRR*n) or fewer scores exceed it; targetFRR = 0 gives the
// maximum. No interpolation between order statistics: any t below x(m) puts
// one more good part above the threshold than the target allows.
//
// The scores should be out-of-sample (for example from KFold), since scores of
// images the model was trained on are optimistically low. With n scores, FRRs
// below 1/n cannot be resolved: for 16 parts, a 1% target returns the maximum
// score, whose expected FRR on new parts is 1/(n+1) ~ 5.9%. Use
// ChooseThreshold for a parametric extrapolation in that case.
func ThresholdAtFRR(goodScores []float64, targetFRR float64) (float64, error) {
	s, err := checkGood(goodScores, targetFRR)
	if err != nil {
		return 0, err
	}
	return empiricalSorted(s, targetFRR), nil
}

func empiricalSorted(s []float64, f float64) float64 {
	n := len(s)
	// The small epsilon keeps e.g. (1-0.05)*20 = 19.000000000000004 at 19.
	m := int(math.Ceil((1-f)*float64(n) - 1e-9))
	m = max(1, min(m, n))
	return s[m-1]
}

// checkGood validates and returns a sorted copy.
func checkGood(goodScores []float64, targetFRR float64) ([]float64, error) {
	if len(goodScores) == 0 {
		return nil, errors.New("metrics: threshold: no good scores")
	}
	if !(targetFRR >= 0 && targetFRR < 1) {
		return nil, fmt.Errorf("metrics: threshold: target FRR %v outside [0, 1)", targetFRR)
	}
	for i, v := range goodScores {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("metrics: threshold: good score %d is %v", i, v)
		}
	}
	s := slices.Clone(goodScores)
	slices.Sort(s)
	return s, nil
}

// ChooseThreshold derives a threshold from out-of-sample good scores with the
// given method (MethodAuto if empty) and explains the choice.
//
// The parametric methods fit mean m and sample deviation sd (of the scores or
// their logs) and return m + t(1-targetFRR; n-1) * sd * sqrt(1+1/n), the upper
// prediction bound for one new part. Under the fitted model its expected FRR
// is exactly targetFRR even for n = 16, where plugging in the normal quantile
// would reject noticeably more than the target because sd is underestimated
// half of the time. They need n >= 3 and scores that are not all equal.
func ChooseThreshold(goodScores []float64, targetFRR float64, method ThresholdMethod) (ThresholdInfo, error) {
	s, err := checkGood(goodScores, targetFRR)
	if err != nil {
		return ThresholdInfo{}, err
	}
	n := len(s)
	info := ThresholdInfo{TargetFRR: targetFRR, N: n}
	tail := targetFRR * float64(n)
	if method == "" {
		method = MethodAuto
	}
	if method == MethodGaussianEmpirical {
		method = MethodGaussian
		if tail >= MinOrderTail {
			method = MethodEmpirical
		}
		info.Note = fmt.Sprintf("%d scores leave %.2f above the target quantile (%d or more: order statistic, fewer: normal fit): %s",
			n, tail, MinOrderTail, method)
	}
	if method == MethodAuto {
		switch {
		case tail >= MinTailSamples:
			method = MethodEmpirical
			info.Note = fmt.Sprintf("%d scores leave %.0f above the target quantile: order statistic", n, math.Floor(tail))
		case s[0] > 0 && logNormalFitsBetter(s):
			method = MethodLogNormal
		default:
			method = MethodGaussian
		}
		if method != MethodEmpirical {
			info.Note = fmt.Sprintf("%d scores leave %.2f above the target quantile (< %d): extrapolated from a %s fit",
				n, tail, MinTailSamples, method)
		}
	}
	info.Method = method
	switch method {
	case MethodEmpirical:
		info.Value = empiricalSorted(s, targetFRR)
		if tail < 1 {
			info.Note = fmt.Sprintf("target FRR %g is below 1/%d: threshold is the maximum score, expected FRR on new parts ~1/(n+1) = %.3f",
				targetFRR, n, 1/float64(n+1))
		}
	case MethodGaussian, MethodLogNormal:
		if targetFRR == 0 {
			return ThresholdInfo{}, errors.New("metrics: threshold: a parametric fit needs target FRR > 0 (FRR 0 means an infinite threshold)")
		}
		x := s
		if method == MethodLogNormal {
			if s[0] <= 0 {
				return ThresholdInfo{}, fmt.Errorf("metrics: threshold: log-normal fit needs positive scores, lowest is %v", s[0])
			}
			x = make([]float64, n)
			for i, v := range s {
				x[i] = math.Log(v)
			}
		}
		v, err := predictionBound(x, targetFRR)
		if err != nil {
			return ThresholdInfo{}, fmt.Errorf("metrics: threshold: %s fit: %w", method, err)
		}
		if method == MethodLogNormal {
			v = math.Exp(v)
		}
		info.Value = v
	default:
		return ThresholdInfo{}, fmt.Errorf("metrics: threshold: unknown method %q", method)
	}
	if info.Note == "" {
		info.Note = fmt.Sprintf("%s method requested; %d scores, %.2f expected above the target quantile", method, n, tail)
	}
	above := n - countAtMost(s, info.Value)
	info.EmpiricalFRR = float64(above) / float64(n)
	return info, nil
}

// logNormalFitsBetter compares the maximised likelihoods of a normal and a
// log-normal fit to positive scores (same number of parameters, so the
// larger wins). Which one describes a method's good scores depends on the
// method: pooled densities give right-skewed squared distances, patch
// methods standardised per position give near-normal scores whose logs are
// skewed the other way; a fixed choice put thresholds far beyond every good
// part for the latter.
func logNormalFitsBetter(s []float64) bool {
	n := float64(len(s))
	if len(s) < 3 {
		return true
	}
	logs := make([]float64, len(s))
	var sumLog float64
	for i, v := range s {
		logs[i] = math.Log(v)
		sumLog += logs[i]
	}
	vn := math.Pow(StdDev(s), 2) * (n - 1) / n
	vl := math.Pow(StdDev(logs), 2) * (n - 1) / n
	if !(vn > 0) || !(vl > 0) {
		return true
	}
	llNormal := -n / 2 * math.Log(vn)
	llLogNormal := -n/2*math.Log(vl) - sumLog
	return llLogNormal > llNormal
}

// predictionBound is the one-sided upper prediction bound for a new draw from
// the normal population that x came from, at miss rate f.
func predictionBound(x []float64, f float64) (float64, error) {
	n := len(x)
	if n < 3 {
		return 0, fmt.Errorf("need at least 3 scores, have %d", n)
	}
	sd := StdDev(x)
	if !(sd > 0) {
		return 0, errors.New("all scores are equal; the spread cannot be estimated")
	}
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(n - 1)}.Quantile(1 - f)
	return Mean(x) + t*sd*math.Sqrt(1+1/float64(n)), nil
}

// countAtMost counts sorted values <= v.
func countAtMost(sorted []float64, v float64) int {
	i, found := slices.BinarySearch(sorted, v)
	for found && i < len(sorted) && sorted[i] == v {
		i++
	}
	return i
}
