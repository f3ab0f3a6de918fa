package evalstats

import (
	"errors"
	"fmt"
	"math"
	"sync"
)

// DefaultPixelBins is the histogram resolution used when none is given:
// 2 x 65536 uint64 counters (1 MiB), enough for an error bound well under 1e-3
// on realistic anomaly maps.
const DefaultPixelBins = 1 << 16

// PixelAUROC accumulates pixel-level AUROC over millions of pixels in constant
// memory. Scores go into a fine histogram per class; the AUROC is then computed
// over bins exactly as AUROC does over scores, treating every pair of a
// defective and a good pixel that share a bin as a tie.
//
// Approximation error: only pairs that share a bin can be misordered, and each
// such pair is counted as 1/2 where the truth is 0 or 1, so
//
//	|AUROC() - exact| <= 0.5 * sum_b pos_b*neg_b / (P*N) = ErrorBound().
//
// The bound is computed from the counts, so it is known for every run. It is
// small when both classes are spread over many bins: with 65536 bins over the
// score range it is of order 1e-5 for smooth score distributions.
//
// Range: a fixed-range accumulator clamps scores outside [lo, hi] into the end
// bins (still covered by the bound). An adaptive one takes its range from the
// first batch and, when a later score falls outside, doubles the range by
// merging neighbouring bins, so the final bin width is at most about four times
// (observed score span)/bins.
//
// Add and AUROC are safe for concurrent use.
type PixelAUROC struct {
	mu       sync.Mutex
	adaptive bool
	ready    bool // range set (always true for fixed)
	lo       float64
	width    float64 // of one bin
	pos, neg []uint64
	nPos     uint64
	nNeg     uint64
}

// NewPixelAUROC returns an accumulator over the fixed score range [lo, hi]
// with bins bins (DefaultPixelBins when bins <= 0).
func NewPixelAUROC(lo, hi float64, bins int) (*PixelAUROC, error) {
	if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) || !(hi > lo) {
		return nil, fmt.Errorf("metrics: pixel AUROC range [%v, %v] must be finite with hi > lo", lo, hi)
	}
	if bins <= 0 {
		bins = DefaultPixelBins
	}
	return &PixelAUROC{
		ready: true,
		lo:    lo,
		width: (hi - lo) / float64(bins),
		pos:   make([]uint64, bins),
		neg:   make([]uint64, bins),
	}, nil
}

// NewAdaptivePixelAUROC returns an accumulator whose range follows the data.
// bins is rounded up to an even number (DefaultPixelBins when bins <= 0).
func NewAdaptivePixelAUROC(bins int) *PixelAUROC {
	if bins <= 0 {
		bins = DefaultPixelBins
	}
	bins += bins % 2 // range doubling merges bins in pairs
	return &PixelAUROC{
		adaptive: true,
		pos:      make([]uint64, bins),
		neg:      make([]uint64, bins),
	}
}

// Add counts one anomaly map: mask[i] true marks a defective pixel.
func (a *PixelAUROC) Add(scores []float32, mask []bool) error {
	if len(scores) != len(mask) {
		return fmt.Errorf("metrics: pixel AUROC: %d scores but %d mask pixels", len(scores), len(mask))
	}
	if len(scores) == 0 {
		return nil
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, s := range scores {
		v := float64(s)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("metrics: pixel AUROC: score %d is %v", i, s)
		}
		lo, hi = min(lo, v), max(hi, v)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.adaptive {
		a.cover(lo, hi)
	}
	bins := len(a.pos)
	inv := 1 / a.width
	top := float64(bins - 1)
	var nPos uint64
	for i, s := range scores {
		// Clamp before converting: float-to-int of a huge value is undefined.
		f := (float64(s) - a.lo) * inv
		b := 0
		if f >= top {
			b = bins - 1
		} else if f > 0 {
			b = int(f)
		}
		if mask[i] {
			a.pos[b]++
			nPos++
		} else {
			a.neg[b]++
		}
	}
	a.nPos += nPos
	a.nNeg += uint64(len(mask)) - nPos
	return nil
}

// cover grows the adaptive range until it holds [lo, hi].
func (a *PixelAUROC) cover(lo, hi float64) {
	bins := len(a.pos)
	if !a.ready {
		span := hi - lo
		if span <= 0 {
			// One distinct value so far: start narrow around it and let
			// later batches widen the range.
			span = max(math.Abs(lo)*1e-6, 1e-12)
			lo -= span / 2
		}
		a.lo = lo
		// A hair over span/bins keeps hi inside the last bin.
		a.width = span / float64(bins) * (1 + 1e-9)
		a.ready = true
		return
	}
	for lo < a.lo || hi >= a.lo+a.width*float64(bins) {
		half := bins / 2
		merged := make([]uint64, bins)
		mergedN := make([]uint64, bins)
		off := 0
		if lo < a.lo {
			off = half // old range becomes the upper half
			a.lo -= a.width * float64(bins)
		}
		for i := range half {
			merged[off+i] = a.pos[2*i] + a.pos[2*i+1]
			mergedN[off+i] = a.neg[2*i] + a.neg[2*i+1]
		}
		a.pos, a.neg = merged, mergedN
		a.width *= 2
	}
}

// Counts returns the number of defective and good pixels seen.
func (a *PixelAUROC) Counts() (defective, good uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nPos, a.nNeg
}

// AUROC returns the histogram AUROC (see the type's comment for its error).
func (a *PixelAUROC) AUROC() (float64, error) {
	auc, _, err := a.compute()
	return auc, err
}

// ErrorBound returns the largest possible |AUROC() - exact AUROC| for the
// pixels seen so far.
func (a *PixelAUROC) ErrorBound() (float64, error) {
	_, bound, err := a.compute()
	return bound, err
}

func (a *PixelAUROC) compute() (auc, bound float64, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.nPos == 0 {
		return 0, 0, errors.New("metrics: pixel AUROC: no defective pixels seen")
	}
	if a.nNeg == 0 {
		return 0, 0, errors.New("metrics: pixel AUROC: no good pixels seen")
	}
	var wins, ties, negBelow float64
	for b := range a.pos {
		p, n := float64(a.pos[b]), float64(a.neg[b])
		wins += p * negBelow
		ties += p * n
		negBelow += n
	}
	pairs := float64(a.nPos) * float64(a.nNeg)
	return (wins + 0.5*ties) / pairs, 0.5 * ties / pairs, nil
}
