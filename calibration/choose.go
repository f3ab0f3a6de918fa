package calibration

import (
	"errors"
	"fmt"
	"math"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/evalstats"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/synth"
	"github.com/inspectd/inspectd/transform"
)

// Candidate is one set of transformations the good parts' reference can be
// built from: each good image and TrainViews-1 random transformations of it.
type Candidate struct {
	Name       string
	Transforms transform.Config
	TrainViews int
}

// maxCandidateViews bounds the views per image a candidate may ask for.
const maxCandidateViews = 64

// Candidates are the sets patch methods choose from by default. Which one
// fits is a property of the product, not of the method: a part whose
// orientation is fixed on the line is hurt by rotations (a rotated busbar
// or edge is a good-looking match for a scratch), a round part or a texture
// needs them, a symmetric part or texture is as good mirrored, a part the
// line does not place exactly needs shifts, and a line with uneven lighting
// needs brightness changes. None of this is known before the product's own
// good parts are seen.
func Candidates() []Candidate {
	return []Candidate{
		{Name: "none", Transforms: transform.Config{Mode: transform.None}, TrainViews: 1},
		{Name: "small-rotations", Transforms: transform.Config{Mode: transform.Small, MaxAngle: 10}, TrainViews: 4},
		{Name: "rotations", Transforms: transform.Config{Mode: transform.Rotate}, TrainViews: 4},
		{Name: "flips", Transforms: transform.Config{Mode: transform.None, Flips: true}, TrainViews: 4},
		{Name: "shifts", Transforms: transform.Config{Mode: transform.None, Shift: 0.04}, TrainViews: 4},
		{Name: "lighting", Transforms: transform.Config{Mode: transform.None, Brightness: 0.2, Contrast: 0.2}, TrainViews: 4},
	}
}

func validateCandidates(cs []Candidate) error {
	seen := map[string]bool{}
	for _, c := range cs {
		switch {
		case c.Name == "" || len(c.Name) > 64:
			return fmt.Errorf("calibration: transformation candidate name %q must be 1-64 bytes", c.Name)
		case seen[c.Name]:
			return fmt.Errorf("calibration: transformation candidate %q listed twice", c.Name)
		case c.TrainViews < 1 || c.TrainViews > maxCandidateViews:
			return fmt.Errorf("calibration: candidate %s: train views %d outside 1..%d", c.Name, c.TrainViews, maxCandidateViews)
		}
		seen[c.Name] = true
		if err := c.Transforms.Validate(); err != nil {
			return fmt.Errorf("calibration: candidate %s: %w", c.Name, err)
		}
	}
	return nil
}

// probesPerImage is how many synthetic defects are drawn on each good
// image: two per image gives 32 probes at 16 parts, enough that one probe
// more or less (3%) is not the whole difference between candidates.
const probesPerImage = 2

// makeProbes draws small synthetic defects (spots, scratches, cracks,
// dents; under 1% of the image) on the good images. owner[j] is the good
// image probe j was drawn on, so it is scored with that image left out of
// the reference, as a new defective part of the same product would be.
// The caller closes the probes.
func makeProbes(imgs []gocv.Mat, seed int64) (probes []gocv.Mat, owner []int, err error) {
	for i, img := range imgs {
		for k := range probesPerImage {
			j := i*probesPerImage + k
			kind := synth.SmallKinds[j%len(synth.SmallKinds)]
			p, mask, err := synth.DefectOnReal(img, kind, seed*7919+int64(j))
			mask.Close()
			if err != nil {
				for _, q := range probes {
					q.Close()
				}
				return nil, nil, fmt.Errorf("synthetic defect on good image %d: %w", i, err)
			}
			probes = append(probes, p)
			owner = append(owner, i)
		}
	}
	return probes, owner, nil
}

// judge measures one candidate: the threshold its leave-one-out good
// scores give at the target false-reject rate, and how the probes fall
// against it.
func judge(name string, views int, good, probes []float64, frr float64, by evalstats.ThresholdMethod) (model.CandidateEvidence, error) {
	if frr <= 0 {
		frr = 0.01
	}
	info, err := evalstats.ChooseThreshold(good, frr, by)
	if err != nil {
		return model.CandidateEvidence{}, fmt.Errorf("candidate %s: threshold: %w", name, err)
	}
	if !(info.Value > 0) || math.IsInf(info.Value, 0) {
		return model.CandidateEvidence{}, fmt.Errorf("candidate %s: threshold %v is not a positive number", name, info.Value)
	}
	ev := model.CandidateEvidence{Name: name, TrainViews: views, Threshold: info.Value}
	margins := make([]float64, len(probes))
	for j, s := range probes {
		if s > info.Value {
			ev.Caught++
		}
		margins[j] = math.Log(max(s, 1e-12) / info.Value)
	}
	if len(probes) > 0 {
		ev.Caught /= float64(len(probes))
		ev.MedianMargin = evalstats.Median(margins)
	}
	return ev, nil
}

// pick chooses among judged candidates. The first (the plainest set) is
// kept unless another catches clearly more probes: a tenth of them more
// (rounded up: 4 of 32), and three at the least. Every candidate is judged against its own
// threshold from sixteen leave-one-out scores, so a candidate whose scores
// came out low by chance catches a probe or two more and brings a threshold
// that rejects more good parts than it says (measured: README, "--mode
// auto"); a margin that chance rarely gives keeps the choice from following
// that luck. Among the candidates that clear it, the most probes caught,
// then, within one probe of the best, the largest median margin (how far
// above the threshold defects sit); the earlier listed wins exact ties.
func pick(evs []model.CandidateEvidence, probes int) (int, error) {
	if len(evs) == 0 {
		return 0, errors.New("calibration: no transformation candidate to choose from")
	}
	n := float64(max(probes, 1))
	need := evs[0].Caught + max(3, math.Ceil(0.1*n))/n - 1e-9
	var cands []int // richer sets that clearly beat the plainest
	best := 0.0
	for i := 1; i < len(evs); i++ {
		if evs[i].Caught >= need {
			cands = append(cands, i)
			best = max(best, evs[i].Caught)
		}
	}
	if len(cands) == 0 {
		return 0, nil
	}
	chosen := -1
	for _, i := range cands {
		if evs[i].Caught < best-1/n-1e-9 {
			continue
		}
		if chosen < 0 || evs[i].MedianMargin > evs[chosen].MedianMargin {
			chosen = i
		}
	}
	return chosen, nil
}
