package evalstats

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Point is one operating point of a ROC curve: predicting "defective" for
// every score >= Threshold gives these rates.
type Point struct {
	FPR, TPR  float64
	Threshold float64
}

// checkScored validates the input shared by AUROC and ROC and counts classes.
func checkScored(scores []float64, labels []bool) (pos, neg int, err error) {
	if len(scores) != len(labels) {
		return 0, 0, fmt.Errorf("metrics: %d scores but %d labels", len(scores), len(labels))
	}
	for i, s := range scores {
		if math.IsNaN(s) {
			return 0, 0, fmt.Errorf("metrics: score %d is NaN", i)
		}
		if labels[i] {
			pos++
		} else {
			neg++
		}
	}
	if pos == 0 {
		return pos, neg, errors.New("metrics: no defective (true) labels; AUROC needs both classes")
	}
	if neg == 0 {
		return pos, neg, errors.New("metrics: no good (false) labels; AUROC needs both classes")
	}
	return pos, neg, nil
}

// AUROC returns the exact area under the ROC curve: the probability that a
// random defective sample scores higher than a random good one, ties counting
// one half (the Mann-Whitney U statistic divided by pos*neg). It sorts once,
// so it costs O(n log n).
func AUROC(scores []float64, labels []bool) (float64, error) {
	pos, neg, err := checkScored(scores, labels)
	if err != nil {
		return 0, err
	}
	ss := sortScored(scores, labels)
	// Walk runs of equal scores in ascending order; each positive in a run beats
	// every negative below the run and ties with the negatives inside it.
	var wins float64 // in units of half a pair, so ties stay integral
	negBelow := 0
	for i := 0; i < len(ss); {
		j := i
		p, n := 0, 0
		for ; j < len(ss) && ss[j].s == ss[i].s; j++ {
			if ss[j].pos {
				p++
			} else {
				n++
			}
		}
		wins += float64(p) * (2*float64(negBelow) + float64(n))
		negBelow += n
		i = j
	}
	return wins / (2 * float64(pos) * float64(neg)), nil
}

// ROC returns the curve from (0,0) at Threshold +Inf to (1,1) at the lowest
// score, one point per distinct score, FPR and TPR both non-decreasing.
func ROC(scores []float64, labels []bool) ([]Point, error) {
	pos, neg, err := checkScored(scores, labels)
	if err != nil {
		return nil, err
	}
	ss := sortScored(scores, labels)
	pts := []Point{{FPR: 0, TPR: 0, Threshold: math.Inf(1)}}
	tp, fp := 0, 0
	for i := len(ss) - 1; i >= 0; {
		s := ss[i].s
		for ; i >= 0 && ss[i].s == s; i-- {
			if ss[i].pos {
				tp++
			} else {
				fp++
			}
		}
		pts = append(pts, Point{
			FPR:       float64(fp) / float64(neg),
			TPR:       float64(tp) / float64(pos),
			Threshold: s,
		})
	}
	return pts, nil
}

type scored struct {
	s   float64
	pos bool
}

// sortScored pairs scores with labels and sorts ascending by score; sorting
// the pairs in place is several times faster than sorting an index.
func sortScored(scores []float64, labels []bool) []scored {
	ss := make([]scored, len(scores))
	for i, s := range scores {
		ss[i] = scored{s, labels[i]}
	}
	slices.SortFunc(ss, func(a, b scored) int { return cmp.Compare(a.s, b.s) })
	return ss
}
