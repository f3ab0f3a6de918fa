package evalstats

import "slices"

// CountAbove counts the scores strictly above threshold t: the parts it
// rejects.
func CountAbove(x []float64, t float64) int {
	n := 0
	for _, v := range x {
		if v > t {
			n++
		}
	}
	return n
}

// ShareAbove is CountAbove as a share of x (0 for no scores): measured on
// good parts the false-reject rate, on defects the catch rate.
func ShareAbove(x []float64, t float64) float64 {
	if len(x) == 0 {
		return 0
	}
	return float64(CountAbove(x, t)) / float64(len(x))
}

// OracleCatch is the share of defects above the threshold that rejects
// exactly k good parts (the k+1-th highest good score): what a threshold
// chosen with hindsight catches at a given false-reject count.
func OracleCatch(good, bad []float64, k int) float64 {
	g := slices.Clone(good)
	slices.Sort(g)
	if len(g) == 0 {
		return 0
	}
	t := g[max(0, len(g)-1-k)]
	return ShareAbove(bad, t)
}
