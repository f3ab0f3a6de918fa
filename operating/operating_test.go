package operating

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/evalstats"
)

func goods(seed uint64, n int, median, sigma float64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 3))
	out := make([]float64, n)
	for i := range out {
		out[i] = median * math.Exp(sigma*rng.NormFloat64())
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Start: 10}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"defaults", func(*Config) {}, ""},
		{"no start", func(c *Config) { c.Start = 0 }, "start threshold"},
		{"NaN start", func(c *Config) { c.Start = math.NaN() }, "start threshold"},
		{"bad source", func(c *Config) { c.Source = "refined" }, "source"},
		{"FRR too high", func(c *Config) { c.TargetFRR = 0.6 }, "target FRR"},
		{"negative FRR", func(c *Config) { c.TargetFRR = -0.1 }, "target FRR"},
		{"after too small", func(c *Config) { c.After = 5 }, "refine after"},
		{"window below after", func(c *Config) { c.After, c.Window = 200, 100 }, "window"},
		{"window too big", func(c *Config) { c.Window = MaxWindow + 1 }, "window"},
		{"lower bound above 1", func(c *Config) { c.MinFactor = 1.5 }, "lower bound"},
		{"upper bound below 1", func(c *Config) { c.MaxFactor = 0.9 }, "upper bound"},
		{"min change 1", func(c *Config) { c.MinChange = 1 }, "minimum change"},
		{"drift window too small", func(c *Config) { c.DriftWindow = 2 }, "drift window"},
		{"negative drift limit", func(c *Config) { c.DriftLimit = -1 }, "drift limit"},
		{"NaN calibration score", func(c *Config) { c.CalibrationGood = []float64{1, math.NaN()} }, "calibration good score 1"},
		{"defect rate 1", func(c *Config) { c.DefectRate = 1 }, "defect rate"},
		{"negative defect rate", func(c *Config) { c.DefectRate = -0.1 }, "defect rate"},
		{"reject window too small", func(c *Config) { c.RejectWindow = 10 }, "reject window"},
		{"reject window too big", func(c *Config) { c.RejectWindow = MaxRejectWindow + 1 }, "reject window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			_, err := New(c)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRefinement(t *testing.T) {
	stream := goods(1, 400, 5, 0.4) // true 1% threshold: 5*exp(2.326*0.4) = 12.7
	for _, tc := range []struct {
		name         string
		cfg          Config
		feed         int
		wantSource   Source
		wantLo, want float64 // the threshold after feed scores lies in [wantLo, want]
	}{
		{"off: stays", Config{Start: 30}, 400, SourceCalibrated, 30, 30},
		{"before After: stays", Config{Start: 30, Refine: true}, 99, SourceCalibrated, 30, 30},
		{"at After: moves down to the line", Config{Start: 30, Refine: true}, 100, SourceRefined, 10, 16},
		{"floored by the lower bound", Config{Start: 60, Refine: true}, 400, SourceRefined, 15, 15},
		{"capped by the upper bound", Config{Start: 5, Refine: true}, 400, SourceRefined, 10, 10},
		{"FRR source moves too", Config{Start: 25, Source: SourceFRR, Refine: true}, 400, SourceRefined, 10, 16},
		{"5% target is lower", Config{Start: 30, Refine: true, TargetFRR: 0.05}, 400, SourceRefined, 8, 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var changes []Change
			for _, s := range stream[:tc.feed] {
				before, _ := r.Threshold()
				if c, ok := r.Observe(s, false); ok {
					if c.From != before || c.Reason != ReasonRefined {
						t.Errorf("change %+v from %v", c, before)
					}
					changes = append(changes, c)
				}
			}
			got, src := r.Threshold()
			if src != tc.wantSource || got < tc.wantLo || got > tc.want {
				t.Errorf("threshold %v (%s), want [%v, %v] (%s); changes %+v", got, src, tc.wantLo, tc.want, tc.wantSource, changes)
			}
			for _, c := range changes[min(1, len(changes)):] {
				if math.Abs(c.To-c.From) < DefaultMinChange*c.From {
					t.Errorf("change below the minimum: %+v", c)
				}
			}
			snap := r.Snapshot()
			if snap.Observed != uint64(tc.feed) || snap.Threshold != got || snap.Lower != r.lo || snap.Upper != r.hi {
				t.Errorf("snapshot %+v", snap)
			}
		})
	}
}

func TestRefinementRobustToDefects(t *testing.T) {
	clean := goods(2, 300, 5, 0.4)
	dirty := append([]float64(nil), clean...)
	rng := rand.New(rand.NewPCG(9, 9))
	for i := 0; i < len(dirty); i += 10 { // 10% defects far above
		dirty[i] = 5 * math.Exp(1.5+0.6*rng.NormFloat64())
	}
	a, _ := robustLogFit(clean)
	b, _ := robustLogFit(dirty)
	// A truncated fit pays for its robustness with spread: on 300 clean
	// scores this one lands 0.11 log units above the truth.
	if ta, tb := a.Threshold(0.01), b.Threshold(0.01); math.Abs(tb/ta-1) > 0.25 {
		t.Errorf("10%% defects moved the 1%% threshold from %v to %v", ta, tb)
	}
	if math.Abs(a.Mu-math.Log(5)) > 0.15 || math.Abs(a.Sigma-0.4) > 0.08 {
		t.Errorf("fit %+v of log-normal(log 5, 0.4)", a)
	}
	if _, err := robustLogFit(clean[:5]); err == nil {
		t.Error("a fit from 5 scores")
	}
	if _, err := robustLogFit(make([]float64, 50)); err == nil {
		t.Error("a fit from zero scores") // log(0) = -Inf: no spread
	}
}

func TestFeedback(t *testing.T) {
	for _, tc := range []struct {
		name     string
		refine   bool
		observed int
		confirm  []float64
		want     float64
		reason   string
	}{
		{"off: no move", false, 10, []float64{35}, 30, ""},
		{"below threshold: no move", true, 10, []float64{20}, 30, ""},
		{"one rejected good raises to it", true, 10, []float64{35}, 35, ReasonFeedback},
		{"raised within the upper bound", true, 10, []float64{100}, 60, ReasonFeedback},
		{"two: to the highest", true, 10, []float64{35, 40}, 40, ReasonFeedback},
		// 1% of 100 parts: one confirmed good may stay above.
		{"1% of the window may stay above", true, 100, []float64{35, 40}, 35, ReasonFeedback},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := New(Config{Start: 30, Refine: tc.refine, After: 1000, Window: 1000})
			for i := 0; i < tc.observed; i++ {
				r.Observe(1+float64(i%7), false)
			}
			var last Change
			for _, s := range tc.confirm {
				if c, ok := r.ConfirmGood(s); ok {
					last = c
				}
			}
			if got, _ := r.Threshold(); got != tc.want || last.Reason != tc.reason {
				t.Errorf("threshold %v after %v (change %+v), want %v (%q)", got, tc.confirm, last, tc.want, tc.reason)
			}
		})
	}
	r, _ := New(Config{Start: 30, Refine: true})
	for i := 0; i < 2*MaxConfirmedGood; i++ {
		r.ConfirmGood(1)
	}
	if n := r.Snapshot().ConfirmedGood; n != MaxConfirmedGood {
		t.Errorf("%d confirmed-good scores kept, want the bound %d", n, MaxConfirmedGood)
	}
	for _, bad := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		if _, ok := r.ConfirmGood(bad); ok {
			t.Errorf("ConfirmGood(%v) moved the threshold", bad)
		}
	}
}

func TestConfirmDefectLeavesWindow(t *testing.T) {
	r, _ := New(Config{Start: 30, After: 20, Window: 20, DriftWindow: 5})
	for i := 1; i <= 25; i++ { // the ring wraps
		r.Observe(float64(i), false)
	}
	if !r.ConfirmDefect(23) {
		t.Fatal("23 not found in the window")
	}
	if r.ConfirmDefect(2) {
		t.Error("2 left the window long ago, yet was found")
	}
	st := r.State("k")
	if len(st.Scores) != 19 || st.Scores[0] != 6 || st.Scores[18] != 25 {
		t.Errorf("window after removing 23: %v", st.Scores)
	}
	for _, v := range st.Scores {
		if v == 23 {
			t.Error("23 still in the window")
		}
	}
	r.Observe(26, false)
	if st := r.State("k"); st.Scores[len(st.Scores)-1] != 26 || len(st.Scores) != 20 {
		t.Errorf("window after one more: %v", st.Scores)
	}
}

func TestDrift(t *testing.T) {
	cal := goods(5, 16, 8, 0.4) // calibration's out-of-sample scores run higher
	for _, tc := range []struct {
		name     string
		stream   []float64
		want     bool
		ref      string
		positive bool
	}{
		{"too few scores", goods(6, 20, 5, 0.4), false, "", false},
		{"line below calibration: no drift", goods(6, 60, 5, 0.4), false, "calibration", false},
		{"line far above calibration", goods(6, 60, 25, 0.4), true, "calibration", true},
		{"steady line", goods(6, 300, 5, 0.4), false, "line", false},
		{"line shifts up after its baseline", append(goods(6, 150, 5, 0.4), goods(7, 60, 9, 0.4)...), true, "line", true},
		{"line shifts down after its baseline", append(goods(6, 150, 5, 0.4), goods(7, 60, 2.5, 0.4)...), true, "line", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := New(Config{Start: 30, Refine: true, CalibrationGood: cal})
			for _, s := range tc.stream {
				r.Observe(s, false)
			}
			d := r.Drift()
			if d.Drifting != tc.want || d.Reference != tc.ref || (d.Drifting && (d.Score > 0) != tc.positive) {
				t.Errorf("drift %+v, want drifting=%v against %q", d, tc.want, tc.ref)
			}
		})
	}
	// Drifting up from a threshold refined below the start: back to the
	// start, once, and held there (not following the drift).
	r, _ := New(Config{Start: 30, Refine: true})
	for _, s := range goods(6, 150, 5, 0.4) {
		r.Observe(s, false)
	}
	if before, src := r.Threshold(); before >= 30 || src != SourceRefined {
		t.Fatalf("not refined down: %v (%s)", before, src)
	}
	var changes []Change
	for _, s := range goods(8, 200, 12, 0.4) {
		if c, ok := r.Observe(s, false); ok {
			changes = append(changes, c)
		}
	}
	after, src := r.Threshold()
	if after != 30 || src != SourceCalibrated || !r.Drift().Drifting || len(changes) != 1 || changes[0].Reason != ReasonDrift {
		t.Errorf("after drifting up: %v (%s), drift %+v, changes %+v; want back at 30 (calibrated) once", after, src, r.Drift(), changes)
	}
	// Drifting down against the line holds the threshold once drift is said.
	r, _ = New(Config{Start: 30, Refine: true})
	for _, s := range goods(6, 150, 5, 0.4) {
		r.Observe(s, false)
	}
	for _, s := range goods(8, 200, 2.5, 0.4) {
		drifting := r.Drift().Drifting
		if c, ok := r.Observe(s, false); ok && drifting {
			t.Errorf("moved while drifting down: %+v", c)
		}
	}
	if d := r.Drift(); !d.Drifting || d.Score > 0 {
		t.Errorf("drift after moving down: %+v", d)
	}
}

func TestStateRoundTrip(t *testing.T) {
	cfg := Config{Start: 30, Refine: true}
	r, _ := New(cfg)
	for _, s := range goods(3, 250, 5, 0.4) {
		r.Observe(s, false)
	}
	r.ConfirmGood(14)
	key := r.Key("model-a")
	data, err := json.Marshal(r.State(key))
	if err != nil {
		t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	r2, _ := New(cfg)
	if err := r2.Restore(st, r2.Key("model-a")); err != nil {
		t.Fatal(err)
	}
	a, b := r.Snapshot(), r2.Snapshot()
	if a.Threshold != b.Threshold || a.Source != b.Source || a.Observed != b.Observed || a.ConfirmedGood != b.ConfirmedGood || a.Drift != b.Drift ||
		a.Rejects != b.Rejects {
		t.Errorf("restored %+v\nwant %+v", b, a)
	}
	// The same scores next give the same decisions.
	for _, s := range goods(4, 60, 5, 0.4) {
		c1, ok1 := r.Observe(s, false)
		c2, ok2 := r2.Observe(s, false)
		if ok1 != ok2 || c1 != c2 {
			t.Fatalf("after restore: %+v/%v vs %+v/%v", c1, ok1, c2, ok2)
		}
	}

	off, _ := New(Config{Start: 30})
	if err := off.Restore(st, off.Key("model-a")); err != nil {
		t.Fatal(err)
	}
	if th, src := off.Threshold(); th != 30 || src != SourceCalibrated {
		t.Errorf("refinement off restored the refined threshold %v (%s)", th, src)
	}

	for _, tc := range []struct {
		name string
		mod  func(*State)
		key  string
		want string
	}{
		{"other model", func(*State) {}, r2.Key("model-b"), "another model"},
		{"version", func(s *State) { s.Version = 9 }, key, "version 9"},
		{"threshold out of bounds", func(s *State) { s.Threshold = 1000 }, key, "outside the bounds"},
		{"NaN score", func(s *State) { s.Scores = []float64{1, math.NaN()} }, key, "score 1 is NaN"},
		{"negative confirmed", func(s *State) { s.ConfirmedGood = []float64{-1} }, key, "score 0 is -1"},
		{"too many scores", func(s *State) { s.Scores = make([]float64, MaxWindow+1) }, key, "more than the bounds"},
		{"too many decisions", func(s *State) { s.Rejects = make([]bool, MaxRejectWindow+1) }, key, "more than the bounds"},
		{"bad fit", func(s *State) { s.Fit = &Fit{Mu: 1, Sigma: 0} }, key, "not a fit"},
		{"bad source", func(s *State) { s.Source = "override" }, key, "source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := st
			s.Scores = append([]float64(nil), st.Scores...)
			tc.mod(&s)
			fresh, _ := New(cfg)
			err := fresh.Restore(s, tc.key)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if tc.name == "other model" && !errors.Is(err, ErrStateMismatch) {
				t.Errorf("not ErrStateMismatch: %v", err)
			}
			if snap := fresh.Snapshot(); snap.Observed != 0 || snap.Threshold != 30 {
				t.Errorf("a refused state changed the refiner: %+v", snap)
			}
		})
	}
}

func TestFitThresholdAndFRR(t *testing.T) {
	for _, f := range []Fit{{Mu: math.Log(5), Sigma: 0.4, N: 1000}, {Mu: 1, Sigma: 0.3, N: 16}} {
		for _, frr := range []float64{0.01, 0.02, 0.05} {
			th := f.Threshold(frr)
			if got := f.FRR(th); math.Abs(got-frr) > 1e-9 {
				t.Errorf("fit %+v: FRR at the %v threshold %v is %v", f, frr, th, got)
			}
		}
	}
	f := Fit{Mu: math.Log(5), Sigma: 0.4, N: 1000}
	if f.FRR(0) != 1 || f.FRR(-1) != 1 {
		t.Error("FRR at a non-positive threshold is not 1")
	}
}

// Drift reads the newest scores of a ring that has wrapped.
func TestDriftOnWrappedWindow(t *testing.T) {
	cal := []float64{math.E, math.E * math.E, math.E * math.E * math.E} // logs 1, 2, 3: median 2, MAD 1.4826
	r, _ := New(Config{Start: 1e6, After: 20, Window: 20, DriftWindow: 5, CalibrationGood: cal, MaxFactor: 1})
	for i := 1; i <= 25; i++ {
		r.Observe(float64(i), false)
	}
	d := r.Drift()
	// Newest five: 21..25, median 23. The line's first fit is the reference
	// now (20 scores seen), so check against it.
	st := r.State("k")
	want := (math.Log(23) - st.Baseline.Mu) / st.Baseline.Sigma
	if d.Reference != "line" || math.Abs(d.Score-want) > 1e-12 {
		t.Errorf("drift %+v, want %v against the line", d, want)
	}
}

// With the calibration's out-of-sample scores, refinement moves the
// calibration's threshold by the line's shift against them and keeps their
// tail: the threshold lands at the start times the ratio of the medians, and
// the rate predicted there is the target, for each tail method.
func TestRefinementMovesCalibrationByLineShift(t *testing.T) {
	cal := goods(5, 16, 5*math.Exp(0.5), 0.4) // fold scores run 0.5 log units high
	stream := goods(6, 300, 5, 0.4)
	for _, method := range []evalstats.ThresholdMethod{evalstats.MethodLogNormal, evalstats.MethodGaussian, ""} {
		t.Run(string(method), func(t *testing.T) {
			start, err := evalstats.ThresholdForFRR(cal, 0.01, method)
			if err != nil {
				t.Fatal(err)
			}
			r, err := New(Config{Start: start, Refine: true, CalibrationGood: cal, TailMethod: method})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range stream {
				r.Observe(s, false)
			}
			snap := r.Snapshot()
			if snap.Source != SourceRefined || snap.Fit == nil {
				t.Fatalf("not refined: %+v", snap)
			}
			logs := make([]float64, len(cal))
			for i, v := range cal {
				logs[i] = math.Log(v)
			}
			m, _ := medianMAD(logs)
			want := start * math.Exp(snap.Fit.Mu-m)
			// Moves of under MinChange are not made, so the threshold may
			// lag the latest proposal by that much.
			if math.Abs(snap.Threshold-want) > DefaultMinChange*want {
				t.Errorf("threshold %v, want %v (start %v x the line's shift)", snap.Threshold, want, start)
			}
			if want > start*0.8 {
				t.Errorf("line scores 0.5 log units under calibration's, yet the threshold only went from %v to %v", start, want)
			}
			predAtWant := r.predictAt(want)
			if math.Abs(predAtWant-0.01) > 1e-6 {
				t.Errorf("predicted rate at the moved threshold %v, want the 1%% target", predAtWant)
			}
			if snap.PredictedFRR <= 0 || snap.PredictedFRR > 0.02 {
				t.Errorf("snapshot predicted rate %v, want near 1%%", snap.PredictedFRR)
			}
		})
	}
}

func (r *Refiner) predictAt(t float64) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.predictLocked(t)
}
