package evaluation

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/inspectd/inspectd/evalstats"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/operating"
	"github.com/inspectd/inspectd/transform"
)

// unionAngles decides how many backbone runs an eval sweep costs: every
// rotation once, and each T scoring exactly its own rotations.
func TestUnionAngles(t *testing.T) {
	small := transform.Config{Mode: transform.Small, MaxAngle: 10}
	cases := []struct {
		name     string
		tr       transform.Config
		Ts       []int
		wantRuns int
	}{
		{"rotations nest", transform.Config{Mode: transform.Rotate}, []int{8, 1, 4, 16, 64}, 64},
		{"small angles share the ends", small, []int{8, 1, 4}, 8 + 1 + 2},
		{"repeated T counted once", small, []int{8, 8, 8}, 8},
		{"no transformations", transform.Config{Mode: transform.None}, []int{8, 64}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			all, index := unionAngles(c.tr, c.Ts)
			if len(all) != c.wantRuns {
				t.Errorf("%d rotations %v, want %d", len(all), all, c.wantRuns)
			}
			for _, T := range c.Ts {
				want := c.tr.TestAngles(T)
				got := index[T]
				if len(got) != len(want) {
					t.Fatalf("T=%d: %d indexes, want %d", T, len(got), len(want))
				}
				for i, k := range got {
					if all[k] != want[i] {
						t.Errorf("T=%d: rotation %d is %g, want %g", T, i, all[k], want[i])
					}
				}
			}
		})
	}
}

// lineAfter reports a calibration's line only when it runs past the
// checkpoint and the model has a threshold to refine, and a calibrated
// threshold held high by out-of-sample scores that run above the line's good
// parts (as fold and leave-one-out scores do) is brought down by the
// refinement (more defects caught than at the start, few good parts
// rejected).
func TestLineAfter(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var parts []operating.Part
	var good []float64
	for i := 0; i < 300; i++ {
		s := math.Exp(0.2 * rng.NormFloat64())
		parts = append(parts, operating.Part{Score: s})
		if i < 16 {
			good = append(good, s*math.Exp(0.5))
		}
	}
	for i := 0; i < 40; i++ {
		parts = append(parts, operating.Part{Score: 1.6 + 2*rng.Float64(), Defect: true})
	}
	calibrated, err := evalstats.ThresholdForFRR(good, 0.01, evalstats.MethodLogNormal)
	if err != nil {
		t.Fatal(err)
	}
	man := model.Manifest{Threshold: model.Threshold{Value: calibrated, TargetFRR: 0.01}}
	man.Training.GoodScores = good
	// A batch the calibration never saw: one good part in six scores far
	// above every threshold.
	batch := slices.Clone(parts)
	for i := range batch {
		if !batch[i].Defect && i%6 == 0 {
			batch[i].Score *= 20
		}
	}
	cases := []struct {
		name     string
		parts    []operating.Part
		man      model.Manifest
		wantOK   bool
		wantHigh bool // the reject-rate check on in most shuffles (else in none)
	}{
		{"long line", parts, man, true, false},
		{"a batch unlike the calibration", batch, man, true, true},
		{"shorter than the checkpoint", parts[290:], man, false, false},
		{"no good scores in the model", parts, model.Manifest{Threshold: man.Threshold}, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, ok, err := lineAfter(c.parts, c.man, 0.05)
			if err != nil || ok != c.wantOK {
				t.Fatalf("lineAfter: ok %v, err %v; want ok %v", ok, err, c.wantOK)
			}
			if !ok {
				return
			}
			// At the calibrated threshold (about 2.8) few defects are
			// caught; moved by the line's shift against the calibration's
			// scores (to about 1.7, the good parts' 99th percentile is
			// 1.6) most defects are.
			if l.Lines != len(frrLineSeeds) || l.TargetFRR != 0.01 || (c.wantHigh && 2*l.RejectsHigh <= l.Lines) || (!c.wantHigh && l.RejectsHigh != 0) {
				t.Errorf("reject-rate check on in %d of %d shuffles (target %v); want most: %v", l.RejectsHigh, l.Lines, l.TargetFRR, c.wantHigh)
			}
			if c.wantHigh {
				return
			}
			if l.Catch < 0.5 || l.FRR > 0.05 || l.OracleCatch < l.Catch-1e-12 {
				t.Errorf("line after %d parts: %+v; want most defects caught, at most 5%% good rejected, oracle >= caught", frrLineAfter, l)
			}
		})
	}
}
