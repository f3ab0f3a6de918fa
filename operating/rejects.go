package operating

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// The reject-rate check. A threshold set from a few good parts can meet good
// parts unlike any of them (a batch of material, a supplier, a module the
// calibration never saw): they score high together, the stream's body hardly
// moves, and no estimate without labels can tell them from defects. What the
// line can tell is that it rejects more than its threshold and its defects
// explain: the recent rejects are tested against Binomial(n, TargetFRR +
// DefectRate), the most a line making defects at its usual rate should
// reject. The check says so (status, metrics) and does nothing else: a
// burst of real defects looks the same, and is for a person to see.
const (
	// DefaultDefectRate is the share of defective parts a line is taken to
	// make at most.
	DefaultDefectRate = 0.05
	// DefaultRejectWindow is how many recent decisions are counted.
	DefaultRejectWindow = 100
	// MaxRejectWindow bounds RejectWindow (memory and state file size).
	MaxRejectWindow = 10_000
	// minRejectDecisions is the fewest decisions the check is made on.
	minRejectDecisions = 20
	// rejectRaiseP and rejectClearP are the tail probabilities at which the
	// check turns on and off again: one line in a thousand at the expected
	// rate raises it on a given test, and it clears only when the count is
	// unremarkable, so it does not flicker around the edge.
	rejectRaiseP = 1e-3
	rejectClearP = 0.05
)

// Rejects is the reject-rate check's position.
type Rejects struct {
	Decisions int     // recent decisions counted
	Rejected  int     // of them rejected
	Rate      float64 // Rejected / Decisions (0 without decisions)
	// Expected is the most the line should reject: TargetFRR + DefectRate.
	Expected float64
	// High says Rejected is beyond what Expected explains (binomial tail
	// below 1e-3; it clears above 0.05).
	High bool
}

// rejectTail is P(X >= k) for X ~ Binomial(n, p).
func rejectTail(k, n int, p float64) float64 {
	if k <= 0 {
		return 1
	}
	if k > n {
		return 0
	}
	return 1 - distuv.Binomial{N: float64(n), P: p}.CDF(float64(k-1))
}

// recordLocked adds one decision to the ring and updates the check.
func (r *Refiner) recordLocked(rejected bool) {
	if len(r.rejects) < r.cfg.RejectWindow {
		r.rejects = append(r.rejects, rejected)
	} else {
		if r.rejects[r.rnext] {
			r.nRejected--
		}
		r.rejects[r.rnext] = rejected
		r.rnext = (r.rnext + 1) % r.cfg.RejectWindow
	}
	if rejected {
		r.nRejected++
	}
	r.updateRejectsLocked()
}

// updateRejectsLocked turns the check on or off from the counts.
func (r *Refiner) updateRejectsLocked() {
	n := len(r.rejects)
	if n < minRejectDecisions {
		r.rejectsHigh = false
		return
	}
	p := rejectTail(r.nRejected, n, r.expectedRejects())
	switch {
	case p < rejectRaiseP:
		r.rejectsHigh = true
	case p > rejectClearP:
		r.rejectsHigh = false
	}
}

func (r *Refiner) expectedRejects() float64 {
	return math.Min(r.cfg.TargetFRR+r.cfg.DefectRate, 0.99)
}

func (r *Refiner) rejectsLocked() Rejects {
	rj := Rejects{Decisions: len(r.rejects), Rejected: r.nRejected, Expected: r.expectedRejects(), High: r.rejectsHigh}
	if rj.Decisions > 0 {
		rj.Rate = float64(rj.Rejected) / float64(rj.Decisions)
	}
	return rj
}

// Rejects says whether the line rejects more than its threshold and its
// defect rate explain.
func (r *Refiner) Rejects() Rejects {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rejectsLocked()
}

// restoreRejectsLocked takes saved decisions (oldest first), the newest
// RejectWindow of them, and the check's state when they were saved (which
// the counts alone do not give between the raise and clear levels).
func (r *Refiner) restoreRejectsLocked(saved []bool, high bool) {
	if len(saved) > r.cfg.RejectWindow {
		saved = saved[len(saved)-r.cfg.RejectWindow:]
	}
	r.rejects, r.rnext, r.nRejected = append([]bool(nil), saved...), 0, 0
	for _, v := range saved {
		if v {
			r.nRejected++
		}
	}
	r.rejectsHigh = high
	r.updateRejectsLocked()
}

// orderedRejectsLocked returns the decisions oldest first (a new slice).
func (r *Refiner) orderedRejectsLocked() []bool {
	if len(r.rejects) < r.cfg.RejectWindow {
		return append([]bool(nil), r.rejects...)
	}
	return append(append([]bool(nil), r.rejects[r.rnext:]...), r.rejects[:r.rnext]...)
}
