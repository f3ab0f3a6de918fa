package operating

import "math"

// The reject-rate check. A threshold set from a few good parts can meet good
// parts unlike any of them (a batch of material, a supplier, a module the
// calibration never saw): they score high together, the stream's body hardly
// moves, and no estimate without labels can tell them from defects. What the
// line can tell is that it rejects more than its threshold and its defects
// explain. The decisions feed a Bernoulli CUSUM that weighs the most a line
// making defects at its usual rate should reject, p0 = TargetFRR +
// DefectRate, against three times that: it turns on after seven rejects in
// a row (while p0 is below a third), or a rate raised for longer, and off
// when the statistic is back at zero. A batch arrives in a run: a CUSUM says
// so after about half the false rejects a window of 100 needs (docs/lab-notes.md, session
// 18). The check says so (status, metrics) and does nothing else: a burst of
// real defects looks the same, and is for a person to see.
const (
	// DefaultDefectRate is the share of defective parts a line is taken to
	// make at most.
	DefaultDefectRate = 0.05
	// DefaultRejectWindow is how many recent decisions the shown rate counts.
	DefaultRejectWindow = 100
	// MaxRejectWindow bounds RejectWindow (memory and state file size).
	MaxRejectWindow = 10_000
	// minRejectWindow is the smallest RejectWindow.
	minRejectWindow = 20
	// rejectShift is the rate, over p0, the CUSUM is tuned to find, and
	// rejectLimit where it turns on: with p0 = 6% (the defaults), a line
	// rejecting exactly p0 turns it on once in about 30,000 parts, one
	// rejecting 3 x p0 after about 70 (simulated).
	rejectShift = 3
	rejectLimit = 7
	// rejectCap bounds the statistic, so that a line back to normal clears
	// within about a hundred parts however long the run was.
	rejectCap = 2 * rejectLimit
)

// Rejects is the reject-rate check's position.
type Rejects struct {
	Decisions int     // recent decisions counted (the last RejectWindow)
	Rejected  int     // of them rejected
	Rate      float64 // Rejected / Decisions (0 without decisions)
	// Expected is the most the line should reject: TargetFRR + DefectRate.
	Expected float64
	// CUSUM is the check's statistic (0 while the line rejects at most
	// Expected), and High says it is beyond its limit.
	CUSUM float64
	High  bool
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
	r.updateRejectsLocked(rejected)
}

// updateRejectsLocked adds one decision to the CUSUM and turns the check on
// or off.
func (r *Refiner) updateRejectsLocked(rejected bool) {
	p0 := r.expectedRejects()
	p1 := math.Min(rejectShift*p0, 0.999)
	if rejected {
		r.cusum += math.Log(p1 / p0)
	} else {
		r.cusum += math.Log((1 - p1) / (1 - p0))
	}
	r.cusum = min(max(r.cusum, 0), rejectCap)
	switch {
	case r.cusum > rejectLimit:
		r.rejectsHigh = true
	case r.cusum == 0:
		r.rejectsHigh = false
	}
}

func (r *Refiner) expectedRejects() float64 {
	return math.Min(r.cfg.TargetFRR+r.cfg.DefectRate, 0.99)
}

func (r *Refiner) rejectsLocked() Rejects {
	rj := Rejects{Decisions: len(r.rejects), Rejected: r.nRejected, Expected: r.expectedRejects(), CUSUM: r.cusum, High: r.rejectsHigh}
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
// RejectWindow of them, and the check's statistic and state (checked by the
// caller).
func (r *Refiner) restoreRejectsLocked(saved []bool, cusum float64, high bool) {
	if len(saved) > r.cfg.RejectWindow {
		saved = saved[len(saved)-r.cfg.RejectWindow:]
	}
	r.rejects, r.rnext, r.nRejected = append([]bool(nil), saved...), 0, 0
	for _, v := range saved {
		if v {
			r.nRejected++
		}
	}
	r.cusum, r.rejectsHigh = min(cusum, rejectCap), high && cusum > 0
}

// orderedRejectsLocked returns the decisions oldest first (a new slice).
func (r *Refiner) orderedRejectsLocked() []bool {
	if len(r.rejects) < r.cfg.RejectWindow {
		return append([]bool(nil), r.rejects...)
	}
	return append(append([]bool(nil), r.rejects[r.rnext:]...), r.rejects[:r.rnext]...)
}
