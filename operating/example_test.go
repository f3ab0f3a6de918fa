package operating_test

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/inspectd/inspectd/evalstats"
	"github.com/inspectd/inspectd/operating"
)

// How `inspectd eval` replays a test set as a line: the test parts' scores
// and truth, the model's threshold and out-of-sample good scores.
func ExampleSimulate() {
	rng := rand.New(rand.NewPCG(1, 2))
	var parts []operating.Part
	for i := 0; i < 400; i++ {
		defect := i%10 == 0
		s := 5 * math.Exp(0.4*rng.NormFloat64())
		if defect {
			s *= math.Exp(1.5)
		}
		parts = append(parts, operating.Part{Score: s, Defect: defect})
	}
	good := make([]float64, 16)
	for i := range good {
		good[i] = 5 * math.Exp(0.5+0.4*rng.NormFloat64()) // fold models score higher
	}
	// manifest.Threshold.Value: calibration's threshold for 1% from those scores.
	calibrated, err := evalstats.ThresholdForFRR(good, 0.01, evalstats.MethodLogNormal)
	if err != nil {
		fmt.Println(err)
		return
	}
	sim, err := operating.Simulate(parts, calibrated, good, 1, operating.Config{Refine: true, TargetFRR: 0.01})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range sim.Checkpoints {
		fmt.Printf("after %d parts: threshold %.1f (%s); so far FRR %.3f catch %.2f (calibrated: catch %.2f); from here FRR %.3f catch %.2f, oracle %.2f\n",
			c.Parts, c.Threshold, c.Source, c.Cumulative.FRR, c.Cumulative.Catch, c.Static.Catch, c.After.FRR, c.After.Catch, c.After.OracleCatch)
	}
	// Output:
	// after 50 parts: threshold 25.5 (calibrated); so far FRR 0.000 catch 0.25 (calibrated: catch 0.25); from here FRR 0.000 catch 0.50, oracle 0.94
	// after 100 parts: threshold 23.0 (refined); so far FRR 0.000 catch 0.23 (calibrated: catch 0.23); from here FRR 0.000 catch 0.59, oracle 1.00
	// after 400 parts: threshold 22.9 (refined); so far FRR 0.000 catch 0.47 (calibrated: catch 0.42); from here FRR 0.000 catch 0.00, oracle 0.00
}

// The daemon tells the Refiner each decision; the reject-rate check says when
// the line rejects more than its threshold and its defect rate explain, here
// a run of rejected parts in a line of 5% defects.
func ExampleRefiner_Rejects() {
	r, err := operating.New(operating.Config{Start: 10, DefectRate: 0.05})
	if err != nil {
		fmt.Println(err)
		return
	}
	for i := 0; i < 200; i++ {
		r.Observe(4, i%20 == 0) // one in twenty rejected: as expected
	}
	rj := r.Rejects()
	fmt.Printf("high %v: %d of the last %d rejected, at most %.0f%% expected\n", rj.High, rj.Rejected, rj.Decisions, 100*rj.Expected)
	for i := 0; i < 7; i++ {
		r.Observe(40, true) // seven in a row
	}
	rj = r.Rejects()
	fmt.Printf("high %v: %d of the last %d rejected, at most %.0f%% expected\n", rj.High, rj.Rejected, rj.Decisions, 100*rj.Expected)
	// Output:
	// high false: 5 of the last 100 rejected, at most 6% expected
	// high true: 11 of the last 100 rejected, at most 6% expected
}
