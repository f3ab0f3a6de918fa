package operating

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

func TestRejectTail(t *testing.T) {
	for _, tc := range []struct {
		k, n int
		p    float64
	}{
		{0, 20, 0.06}, {1, 20, 0.06}, {6, 20, 0.06}, {14, 100, 0.06}, {18, 100, 0.06}, {100, 100, 0.5}, {101, 100, 0.5}, {3, 50, 0.3},
	} {
		// P(X >= k) summed term by term.
		var want float64
		for j := tc.k; j <= tc.n; j++ {
			lg, _ := math.Lgamma(float64(tc.n + 1))
			a, _ := math.Lgamma(float64(j + 1))
			b, _ := math.Lgamma(float64(tc.n - j + 1))
			want += math.Exp(lg - a - b + float64(j)*math.Log(tc.p) + float64(tc.n-j)*math.Log1p(-tc.p))
		}
		if tc.k <= 0 {
			want = 1
		}
		if got := rejectTail(tc.k, tc.n, tc.p); math.Abs(got-want) > 1e-9+1e-6*want {
			t.Errorf("P(X >= %d; %d, %v) = %v, want %v", tc.k, tc.n, tc.p, got, want)
		}
	}
}

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
		{"quiet line", Config{Start: 10}, 0.04, 3000, [2]int{0, 0}, false},
		{"at the expected rate", Config{Start: 10}, 0.06, 3000, [2]int{0, 0}, false},
		// Good parts unlike the calibration's, rejected at 13% beside 5% defects.
		{"unseen good parts", Config{Start: 10}, 0.18, 400, [2]int{20, 200}, true},
		{"every part", Config{Start: 10}, 1, 100, [2]int{20, 20}, true},
		// A line that makes 20% defects says so with the default, not when
		// its engineer said 20% is normal.
		{"defect-heavy line, default rate", Config{Start: 10}, 0.2, 400, [2]int{20, 200}, true},
		{"defect-heavy line, its rate", Config{Start: 10, DefectRate: 0.2}, 0.2, 3000, [2]int{0, 0}, false},
		{"short window", Config{Start: 10, RejectWindow: 20}, 0.4, 200, [2]int{20, 60}, true},
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
		})
	}
}

// The check clears once the rejects stop, only after the count is
// unremarkable again, and comes back from a saved state as it was.
func TestRejectsClearAndRestore(t *testing.T) {
	cfg := Config{Start: 10}
	r, _ := New(cfg)
	rng := rand.New(rand.NewPCG(8, 8))
	if _, high := feedRejects(r, rng, 100, 0.3); !high {
		t.Fatalf("30%% rejects: not High %+v", r.Rejects())
	}
	// Raised at a tail of 1e-3, cleared above 0.05: between the two it holds.
	holds := false
	for i := 0; r.Rejects().High; i++ {
		rj := r.Rejects()
		if p := rejectTail(rj.Rejected, rj.Decisions, rj.Expected); p > rejectRaiseP && p <= rejectClearP {
			holds = true
		}
		if i > 100 {
			t.Fatalf("still High after 100 clean decisions: %+v", rj)
		}
		r.Observe(5, false)
	}
	if !holds {
		t.Error("the check cleared without passing through the band where it holds")
	}
	if rj := r.Rejects(); rejectTail(rj.Rejected, rj.Decisions, rj.Expected) <= rejectClearP {
		t.Errorf("cleared at %+v", rj)
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
	if len(st.Rejects) != DefaultRejectWindow {
		t.Fatalf("saved %d decisions, want the window's %d", len(st.Rejects), DefaultRejectWindow)
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
}
