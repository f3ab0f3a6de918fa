package operating

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/inspectd/inspectd/evalstats"
)

// CutQuantile is where the fit stops looking: scores above this quantile of
// the stream are where defects live, so the good parts' distribution is
// fitted to the scores below it only, as a normal on log(score) truncated at
// the cut. A truncated fit does not need to know how many of the scores above
// the cut are defects, so it stays right with 0% or 30% of them.
const CutQuantile = 0.8

// Fit is a log-normal fit of good parts' scores: log(score) ~ N(Mu, Sigma).
type Fit struct {
	Mu    float64 `json:"mu"`
	Sigma float64 `json:"sigma"`
	N     int     `json:"n"` // scores the fit used (below the cut)
}

// Threshold is the upper prediction bound of the fit for one new good part
// at false-reject rate frr: exp(Mu + t(1-frr; N-1) * Sigma * sqrt(1+1/N)).
func (f Fit) Threshold(frr float64) float64 {
	nu := float64(max(f.N-1, 1))
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: nu}.Quantile(1 - frr)
	return math.Exp(f.Mu + t*f.Sigma*math.Sqrt(1+1/float64(max(f.N, 1))))
}

// FRR is the fraction of new good parts the fit predicts above threshold
// t, from the same predictive distribution Threshold inverts (so
// FRR(Threshold(p)) = p): it allows for the fit's own uncertainty.
func (f Fit) FRR(t float64) float64 {
	if !(t > 0) {
		return 1
	}
	nu := float64(max(f.N-1, 1))
	z := (math.Log(t) - f.Mu) / (f.Sigma * math.Sqrt(1+1/float64(max(f.N, 1))))
	return 1 - distuv.StudentsT{Mu: 0, Sigma: 1, Nu: nu}.CDF(z)
}

// robustLogFit fits the good parts' score distribution from a stream that
// may hold defects: a normal on log scores truncated at the stream's
// CutQuantile, by maximum likelihood, started from quantile estimates of the
// lower part. Scores must be positive and finite (the caller filters).
func robustLogFit(scores []float64) (Fit, error) {
	if len(scores) < minFit {
		return Fit{}, fmt.Errorf("operating: %d scores, need at least %d for a fit", len(scores), minFit)
	}
	y := make([]float64, len(scores))
	for i, v := range scores {
		y[i] = math.Log(v)
	}
	slices.Sort(y)
	cut := quantileSorted(y, CutQuantile)
	n := 0
	for n < len(y) && y[n] <= cut {
		n++
	}
	low := y[:n]
	// Start: the median and the spread between the 10th percentile and the
	// median, which few defects reach.
	mu0 := quantileSorted(y, 0.5)
	s0 := (mu0 - quantileSorted(y, 0.1)) / 1.2815515655446004
	if !(s0 > 0) {
		return Fit{}, errors.New("operating: the lower half of the scores has no spread")
	}
	nll := func(x []float64) float64 {
		mu, s := x[0], math.Exp(x[1])
		var ss float64
		for _, v := range low {
			d := (v - mu) / s
			ss += d * d
		}
		p := distuv.UnitNormal.CDF((cut - mu) / s)
		if p < 1e-300 {
			return math.Inf(1)
		}
		return float64(len(low))*math.Log(s) + ss/2 + float64(len(low))*math.Log(p)
	}
	x := nelderMead2(nll, [2]float64{mu0, math.Log(s0)}, [2]float64{s0 / 2, 0.3}, 400)
	fit := Fit{Mu: mu0, Sigma: s0, N: len(low)}
	mu, s := x[0], math.Exp(x[1])
	// A flat likelihood can walk off with a small sample: keep the fit near
	// the quantile start, else keep the start.
	if !math.IsNaN(mu) && math.Abs(mu-mu0) <= 3*s0 && s >= s0/4 && s <= 4*s0 {
		fit.Mu, fit.Sigma = mu, s
	}
	return fit, nil
}

// minFit is the fewest scores a fit is made from.
const minFit = 20

var quantileSorted = evalstats.QuantileSorted

// medianMAD returns the median and the normal-consistent MAD of x (sorted
// copy); the MAD falls back to the IQR/1.349, then to the sample deviation.
func medianMAD(x []float64) (float64, float64) {
	s := slices.Clone(x)
	slices.Sort(s)
	m := quantileSorted(s, 0.5)
	d := make([]float64, len(s))
	for i, v := range s {
		d[i] = math.Abs(v - m)
	}
	slices.Sort(d)
	mad := 1.482602218505602 * quantileSorted(d, 0.5)
	if mad > 0 {
		return m, mad
	}
	if iqr := quantileSorted(s, 0.75) - quantileSorted(s, 0.25); iqr > 0 {
		return m, iqr / 1.349
	}
	var ss, mean float64
	for _, v := range s {
		mean += v
	}
	mean /= float64(len(s))
	for _, v := range s {
		ss += (v - mean) * (v - mean)
	}
	if len(s) > 1 {
		return m, math.Sqrt(ss / float64(len(s)-1))
	}
	return m, 0
}

// nelderMead2 minimises f over two variables from x0 with initial steps,
// for at most iters iterations (deterministic; enough for a smooth
// two-parameter likelihood).
func nelderMead2(f func([]float64) float64, x0, step [2]float64, iters int) [2]float64 {
	type pt struct {
		x [2]float64
		v float64
	}
	eval := func(x [2]float64) pt { return pt{x, f(x[:])} }
	s := [3]pt{eval(x0), eval([2]float64{x0[0] + step[0], x0[1]}), eval([2]float64{x0[0], x0[1] + step[1]})}
	comb := func(a, b [2]float64, t float64) [2]float64 { // a + t(b-a)
		return [2]float64{a[0] + t*(b[0]-a[0]), a[1] + t*(b[1]-a[1])}
	}
	for it := 0; it < iters; it++ {
		slices.SortFunc(s[:], func(a, b pt) int {
			switch {
			case a.v < b.v:
				return -1
			case a.v > b.v:
				return 1
			}
			return 0
		})
		if math.Abs(s[2].v-s[0].v) < 1e-10*(1+math.Abs(s[0].v)) &&
			math.Abs(s[2].x[0]-s[0].x[0])+math.Abs(s[2].x[1]-s[0].x[1]) < 1e-9 {
			break
		}
		c := [2]float64{(s[0].x[0] + s[1].x[0]) / 2, (s[0].x[1] + s[1].x[1]) / 2}
		r := eval(comb(c, s[2].x, -1))
		switch {
		case r.v < s[0].v:
			if e := eval(comb(c, s[2].x, -2)); e.v < r.v {
				s[2] = e
			} else {
				s[2] = r
			}
		case r.v < s[1].v:
			s[2] = r
		default:
			if k := eval(comb(c, s[2].x, 0.5)); k.v < s[2].v {
				s[2] = k
			} else {
				for i := 1; i < 3; i++ {
					s[i] = eval(comb(s[0].x, s[i].x, 0.5))
				}
			}
		}
	}
	best := s[0]
	for _, p := range s[1:] {
		if p.v < best.v {
			best = p
		}
	}
	return best.x
}
