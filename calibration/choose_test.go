package calibration

import (
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/transform"
)

func TestPick(t *testing.T) {
	ev := func(name string, caught, margin float64) model.CandidateEvidence {
		return model.CandidateEvidence{Name: name, Caught: caught, MedianMargin: margin}
	}
	for _, tc := range []struct {
		name   string
		evs    []model.CandidateEvidence
		probes int
		want   string
	}{
		{"clearly more caught wins", []model.CandidateEvidence{ev("none", 0.25, 0.1), ev("rot", 0.5, -0.2)}, 32, "rot"},
		{"three probes more keep the plainest", []model.CandidateEvidence{ev("none", 0.5, 0.1), ev("rot", 0.5+3.0/32, 0.3)}, 32, "none"},
		{"four probes more win", []model.CandidateEvidence{ev("none", 0.5, 0.3), ev("rot", 0.5+4.0/32, 0.1)}, 32, "rot"},
		{"few probes: three more are needed", []model.CandidateEvidence{ev("none", 0.5, 0.3), ev("rot", 0.5+3.0/8, 0.1)}, 8, "rot"},
		{"a tenth of many probes is needed", []model.CandidateEvidence{ev("none", 0.5, 0.3), ev("rot", 0.5+5.0/64, 0.4)}, 64, "none"},
		{"among clear winners, within one probe the margin decides", []model.CandidateEvidence{ev("none", 0.2, 0.3), ev("rot", 0.5, 0.1), ev("small", 0.5+1.0/32, 0.05), ev("flips", 0.5, 0.2)}, 32, "flips"},
		{"among clear winners, two probes apart the catch decides", []model.CandidateEvidence{ev("none", 0.2, 0.3), ev("rot", 0.5, 0.4), ev("small", 0.5+2.0/32, 0.05)}, 32, "small"},
		{"exact tie keeps the earlier", []model.CandidateEvidence{ev("none", 0.2, 0.1), ev("rot", 0.5, 0.1), ev("small", 0.5, 0.1)}, 32, "rot"},
		{"nothing caught: the plainest", []model.CandidateEvidence{ev("none", 0, -0.6), ev("small", 0, -0.4), ev("rot", 0, -0.5)}, 32, "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i, err := pick(tc.evs, tc.probes)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.evs[i].Name; got != tc.want {
				t.Errorf("picked %s, want %s", got, tc.want)
			}
		})
	}
	if _, err := pick(nil, 32); err == nil {
		t.Error("no candidates: want an error")
	}
}

func TestJudge(t *testing.T) {
	// Sixteen good scores spread around 1; probes either far above or at
	// the good parts' level.
	good := []float64{0.8, 0.85, 0.9, 0.92, 0.95, 0.97, 1, 1, 1.02, 1.03, 1.05, 1.08, 1.1, 1.12, 1.15, 1.2}
	probes := []float64{5, 6, 7, 1, 1, 0.9, 8, 1.1}
	e, err := judge("x", 4, good, probes, 0.01, "empirical")
	if err != nil {
		t.Fatal(err)
	}
	if e.Threshold < 1.2 {
		t.Errorf("threshold %v below the highest good score at 1%% FRR", e.Threshold)
	}
	if e.Caught != 0.5 {
		t.Errorf("caught %v, want 0.5 (4 of 8 probes far above)", e.Caught)
	}
	if e.TrainViews != 4 || e.Name != "x" {
		t.Errorf("evidence %+v lost the candidate's name or views", e)
	}
	if _, err := judge("bad", 1, []float64{-1, -1, -1}, probes, 0.01, "empirical"); err == nil {
		t.Error("a non-positive threshold: want an error")
	}
}

func TestCandidatesValidate(t *testing.T) {
	if err := validateCandidates(Candidates()); err != nil {
		t.Fatalf("default candidates: %v", err)
	}
	ok := Candidate{Name: "a", Transforms: transform.Config{Mode: transform.None}, TrainViews: 1}
	for _, tc := range []struct {
		name string
		cs   []Candidate
		want string
	}{
		{"empty name", []Candidate{{Transforms: ok.Transforms, TrainViews: 1}}, "name"},
		{"twice", []Candidate{ok, ok}, "twice"},
		{"no views", []Candidate{{Name: "b", Transforms: ok.Transforms}}, "train views"},
		{"too many views", []Candidate{{Name: "b", Transforms: ok.Transforms, TrainViews: 1000}}, "train views"},
		{"bad transform", []Candidate{{Name: "b", Transforms: transform.Config{Mode: "spin"}, TrainViews: 2}}, "unknown mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validateCandidates(tc.cs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
	c := DefaultsFor(Defaults().Method)
	c.Choose = Candidates()
	if err := c.Validate(); err == nil {
		t.Error("choosing transformations for the flow: want an error")
	}
}
