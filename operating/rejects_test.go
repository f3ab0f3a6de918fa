package operating

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// feedRejects observes n decisions, each a reject with probability share,
// and returns the decision count after which the check first said High (0:
// never) and whether it says High at the end.
func feedRejects(r *Refiner, rng *rand.Rand, n int, share float64) (first int, high bool) {
	for i := range n {
		r.Observe(5, rng.Float64() < share)
		if r.Rejects().High && first == 0 {
			first = i + 1
		}
	}
	return first, r.Rejects().High
}

func TestRejects(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cfg        Config
		share      float64 // of decisions rejected
		n          int
		wantFirst  [2]int // the check first says High after a count in this range ({0, 0}: never)
		wantHighAt bool
	}{
		// 1% target and 5% defects expected: 4% rejected is a quiet line.
		{"quiet line", Config{Start: 10}, 0.04, 5000, [2]int{0, 0}, false},
		{"at the expected rate", Config{Start: 10}, 0.06, 3000, [2]int{0, 0}, false},
		// Good parts unlike the calibration's, rejected at 13% beside 5% defects.
		{"unseen good parts", Config{Start: 10}, 0.18, 400, [2]int{7, 250}, true},
		{"every part", Config{Start: 10}, 1, 100, [2]int{7, 7}, true},
		// A line that makes 20% defects says so with the default, not when
		// its engineer said 20% is normal.
		{"defect-heavy line, default rate", Config{Start: 10}, 0.2, 400, [2]int{7, 250}, true},
		{"defect-heavy line, its rate", Config{Start: 10, DefectRate: 0.2}, 0.2, 3000, [2]int{0, 0}, false},
		{"short window", Config{Start: 10, RejectWindow: 20}, 0.4, 200, [2]int{7, 60}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			first, high := feedRejects(r, rand.New(rand.NewPCG(7, 7)), tc.n, tc.share)
			if first < tc.wantFirst[0] || first > tc.wantFirst[1] || high != tc.wantHighAt {
				t.Errorf("first High after %d decisions (want %v), High at the end %v; %+v", first, tc.wantFirst, high, r.Rejects())
			}
			rj := r.Rejects()
			w := r.cfg.RejectWindow
			if rj.Decisions != min(tc.n, w) || rj.Rejected > rj.Decisions || math.Abs(rj.Rate-float64(rj.Rejected)/float64(rj.Decisions)) > 1e-12 {
				t.Errorf("counts %+v after %d decisions, window %d", rj, tc.n, w)
			}
			if want := math.Min(r.cfg.TargetFRR+r.cfg.DefectRate, 0.99); rj.Expected != want {
				t.Errorf("expected rate %v, want %v", rj.Expected, want)
			}
			if !(rj.CUSUM >= 0 && rj.CUSUM <= rejectCap) {
				t.Errorf("statistic %v outside [0, %v]", rj.CUSUM, rejectCap)
			}
		})
	}
}

// A run of rejects turns the check on sooner than the same rejects spread
// over the window: seven in a row do.
func TestRejectsRun(t *testing.T) {
	r, _ := New(Config{Start: 10})
	for range 50 {
		r.Observe(5, false)
	}
	for i := 1; i <= 7; i++ {
		r.Observe(50, true)
		if high := r.Rejects().High; high != (i == 7) {
			t.Fatalf("after %d rejects in a row: High %v (%+v)", i, high, r.Rejects())
		}
	}
	// The same seven rejects, one in every seven parts: a 14% rate over 49
	// parts, nothing to say yet.
	s, _ := New(Config{Start: 10})
	for i := range 49 {
		s.Observe(5, i%7 == 0)
	}
	if rj := s.Rejects(); rj.High || rj.Rejected != 7 {
		t.Errorf("spread rejects: %+v", rj)
	}
}

// The check clears once the rejects stop, only when the statistic is back at
// zero, and comes back from a saved state as it was.
func TestRejectsClearAndRestore(t *testing.T) {
	cfg := Config{Start: 10}
	r, _ := New(cfg)
	rng := rand.New(rand.NewPCG(8, 8))
	if _, high := feedRejects(r, rng, 100, 0.3); !high {
		t.Fatalf("30%% rejects: not High %+v", r.Rejects())
	}
	// Between the limit and zero it holds.
	holds, clean := false, 0
	for r.Rejects().High {
		if c := r.Rejects().CUSUM; c > 0 && c <= rejectLimit {
			holds = true
		}
		if clean > 150 {
			t.Fatalf("still High after 150 clean decisions: %+v", r.Rejects())
		}
		r.Observe(5, false)
		clean++
	}
	if !holds || r.Rejects().CUSUM != 0 {
		t.Errorf("cleared at %+v after %d clean decisions (held below the limit: %v)", r.Rejects(), clean, holds)
	}

	feedRejects(r, rng, 100, 0.3)
	data, err := json.Marshal(r.State(r.Key("m")))
	if err != nil {
		t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Rejects) != DefaultRejectWindow || st.RejectCUSUM <= 0 || !st.RejectsHigh {
		t.Fatalf("saved %d decisions, statistic %v, high %v; want the window's %d, > 0, true", len(st.Rejects), st.RejectCUSUM, st.RejectsHigh, DefaultRejectWindow)
	}
	r2, _ := New(cfg)
	if err := r2.Restore(st, r2.Key("m")); err != nil {
		t.Fatal(err)
	}
	if a, b := r.Rejects(), r2.Rejects(); a != b || !b.High {
		t.Errorf("restored %+v, want %+v", b, a)
	}
	// A smaller window after the restart keeps the newest decisions.
	small, _ := New(Config{Start: 10, RejectWindow: 30})
	if err := small.Restore(st, small.Key("m")); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, v := range st.Rejects[len(st.Rejects)-30:] {
		if v {
			want++
		}
	}
	if rj := small.Rejects(); rj.Decisions != 30 || rj.Rejected != want {
		t.Errorf("restored into a window of 30: %+v, want %d rejected", rj, want)
	}
	for _, bad := range []float64{-1, math.Inf(1), math.NaN()} {
		s := st
		s.RejectCUSUM = bad
		if err := r2.Restore(s, r2.Key("m")); err == nil {
			t.Errorf("saved statistic %v restored", bad)
		}
	}
}
