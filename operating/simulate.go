package operating

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Part is one scored test part with its truth.
type Part struct {
	Score  float64
	Defect bool
}

// Rates are the decisions over a run of parts.
type Rates struct {
	Parts, Good, Defects int
	FalseRejects         int     // good parts rejected
	Caught               int     // defects rejected
	FRR                  float64 // FalseRejects / Good (0 without good parts)
	Catch                float64 // Caught / Defects (0 without defects)
	// OracleThreshold is the threshold that, on these same parts, rejects
	// at most as many good parts as the decisions did (the (FalseRejects+1)-th
	// highest good score), and OracleCatch its catch rate: what a threshold
	// chosen with hindsight would catch at the same false-reject rate.
	OracleThreshold float64
	OracleCatch     float64
}

// Checkpoint is the line after Parts parts.
type Checkpoint struct {
	Parts     int
	Threshold float64 // in force after Parts parts
	Source    Source
	// Cumulative covers parts 1..Parts, each decided with the threshold in
	// force when it came; After covers parts Parts+1..end, decided the same
	// way (empty at the last checkpoint).
	Cumulative, After Rates
	// Static and StaticAfter are Cumulative and After at the calibrated
	// threshold, unrefined: the same parts without refinement.
	Static, StaticAfter Rates
}

// Simulation is the outcome of Simulate.
type Simulation struct {
	Seed        int64
	Checkpoints []Checkpoint // after 50, 100 (those below the number of parts) and all parts
	Changes     []Change     // every threshold move, in order
	Final       float64      // threshold after the last part
	// RejectsHigh is the part after which the reject-rate check first said
	// the line rejects too many (0: never), and RejectsHighParts how many
	// parts it said so after.
	RejectsHigh, RejectsHighParts int
}

// SimulationCheckpoints are the part counts Simulate reports after (plus all).
var SimulationCheckpoints = []int{50, 100}

// Simulate streams parts in an order shuffled by seed through a Refiner
// started at the calibrated threshold (cfg.Start and cfg.Source are set
// from it, cfg.CalibrationGood from good; other zero fields take the
// defaults and cfg.Refine is used as given, so a caller wanting the line as
// the daemon runs it sets Refine: true). Each part is decided with the
// threshold in force when it comes, then observed; no feedback is given.
// parts is not modified.
func Simulate(parts []Part, calibrated float64, good []float64, seed int64, cfg Config) (Simulation, error) {
	return simulate(parts, calibrated, good, seed, cfg, false)
}

// SimulateReviewed is Simulate on a line where a person checks every
// rejected part, as at a rework station, and says what it was: a good one
// is confirmed good (ConfirmGood: it may raise the threshold), a defect is
// confirmed (ConfirmDefect: its score leaves the window).
func SimulateReviewed(parts []Part, calibrated float64, good []float64, seed int64, cfg Config) (Simulation, error) {
	return simulate(parts, calibrated, good, seed, cfg, true)
}

func simulate(parts []Part, calibrated float64, good []float64, seed int64, cfg Config, review bool) (Simulation, error) {
	if len(parts) == 0 {
		return Simulation{}, errors.New("operating: simulate: no parts")
	}
	for i, p := range parts {
		if math.IsNaN(p.Score) || math.IsInf(p.Score, 0) {
			return Simulation{}, fmt.Errorf("operating: simulate: part %d has score %v", i, p.Score)
		}
	}
	cfg.Start, cfg.Source, cfg.CalibrationGood = calibrated, SourceCalibrated, good
	r, err := New(cfg)
	if err != nil {
		return Simulation{}, fmt.Errorf("operating: simulate: %w", err)
	}
	order := slices.Clone(parts)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })

	rejected := make([]bool, len(order))
	thrAfter := make([]float64, len(order))
	srcAfter := make([]Source, len(order))
	sim := Simulation{Seed: seed}
	for i, p := range order {
		t, _ := r.Threshold()
		rejected[i] = p.Score > t
		if c, ok := r.Observe(p.Score, rejected[i]); ok {
			sim.Changes = append(sim.Changes, c)
		}
		if review && rejected[i] {
			if p.Defect {
				r.ConfirmDefect(p.Score)
			} else if c, ok := r.ConfirmGood(p.Score); ok {
				sim.Changes = append(sim.Changes, c)
			}
		}
		thrAfter[i], srcAfter[i] = r.Threshold()
		if r.Rejects().High {
			if sim.RejectsHigh == 0 {
				sim.RejectsHigh = i + 1
			}
			sim.RejectsHighParts++
		}
	}
	sim.Final = thrAfter[len(order)-1]
	static := make([]bool, len(order))
	for i, p := range order {
		static[i] = p.Score > calibrated
	}
	var cps []int
	for _, n := range SimulationCheckpoints {
		if n < len(order) {
			cps = append(cps, n)
		}
	}
	cps = append(cps, len(order))
	for _, n := range cps {
		sim.Checkpoints = append(sim.Checkpoints, Checkpoint{Parts: n, Threshold: thrAfter[n-1], Source: srcAfter[n-1],
			Cumulative: rates(order[:n], rejected[:n]), After: rates(order[n:], rejected[n:]), Static: rates(order[:n], static[:n]),
			StaticAfter: rates(order[n:], static[n:])})
	}
	return sim, nil
}

// rates counts decisions and the oracle at the same false-reject count.
func rates(parts []Part, rejected []bool) Rates {
	r := Rates{Parts: len(parts)}
	var goods, defects []float64
	for i, p := range parts {
		if p.Defect {
			r.Defects++
			defects = append(defects, p.Score)
			if rejected[i] {
				r.Caught++
			}
		} else {
			r.Good++
			goods = append(goods, p.Score)
			if rejected[i] {
				r.FalseRejects++
			}
		}
	}
	if r.Good > 0 {
		r.FRR = float64(r.FalseRejects) / float64(r.Good)
	}
	if r.Defects > 0 {
		r.Catch = float64(r.Caught) / float64(r.Defects)
	}
	if r.Good == 0 {
		r.OracleThreshold = math.Inf(-1)
		r.OracleCatch = 1
		if r.Defects == 0 {
			r.OracleCatch = 0
		}
		return r
	}
	slices.Sort(goods)
	slices.Reverse(goods)
	// At most FalseRejects good parts strictly above: the next good score.
	if r.FalseRejects >= len(goods) {
		r.OracleThreshold = math.Inf(-1)
	} else {
		r.OracleThreshold = goods[r.FalseRejects]
	}
	caught := 0
	for _, d := range defects {
		if d > r.OracleThreshold {
			caught++
		}
	}
	if r.Defects > 0 {
		r.OracleCatch = float64(caught) / float64(r.Defects)
	}
	return r
}
