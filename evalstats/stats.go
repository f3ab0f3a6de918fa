package evalstats

import (
	"math"
	"slices"
)

// Mean is the arithmetic mean; NaN for no values.
func Mean(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// StdDev is the sample standard deviation (n-1 denominator); NaN for fewer
// than two values.
func StdDev(x []float64) float64 {
	if len(x) < 2 {
		return math.NaN()
	}
	m := Mean(x)
	var ss float64
	for _, v := range x {
		ss += (v - m) * (v - m)
	}
	return math.Sqrt(ss / float64(len(x)-1))
}

// Quantile returns the q-quantile (q in [0,1]) by linear interpolation between
// order statistics at position q*(n-1) (Hyndman-Fan type 7, the default of R
// and NumPy). x is not modified. NaN for no values or q outside [0,1].
func Quantile(x []float64, q float64) float64 {
	if len(x) == 0 || !(q >= 0 && q <= 1) {
		return math.NaN()
	}
	s := slices.Clone(x)
	slices.Sort(s)
	return QuantileSorted(s, q)
}

// QuantileSorted is Quantile of values already sorted ascending (linear
// interpolation between order statistics; no copy, no sort).
func QuantileSorted(s []float64, q float64) float64 {
	h := q * float64(len(s)-1)
	lo := int(math.Floor(h))
	if lo >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[lo] + (h-float64(lo))*(s[lo+1]-s[lo])
}

// Percentile is Quantile with p in [0,100].
func Percentile(x []float64, p float64) float64 { return Quantile(x, p/100) }

// Median is the 0.5 quantile (the mean of the two middle values for even n).
func Median(x []float64) float64 { return Quantile(x, 0.5) }
