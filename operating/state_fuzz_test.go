package operating

import (
	"encoding/json"
	"math"
	"testing"
)

// FuzzRestore feeds the saved operating state file (read back at every
// start, from a disk that may have been cut off mid-write or edited by hand)
// through the daemon's path: JSON, then Restore. Whatever it holds, Restore
// either refuses it and leaves the Refiner as it was, or leaves one whose
// threshold lies within its bounds, whose windows stay within their sizes
// and whose counts agree with them, and which goes on observing.
func FuzzRestore(f *testing.F) {
	cfg := Config{Start: 10, Refine: true, After: 20, Window: 50, RejectWindow: 30, CalibrationGood: goods(1, 16, 8, 0.3)}
	key := func(r *Refiner) string { return r.Key("m") }
	seed, _ := New(cfg)
	for i, s := range goods(2, 80, 5, 0.4) {
		seed.Observe(s, i%5 == 0)
	}
	seed.ConfirmGood(12)
	good, _ := json.Marshal(seed.State(key(seed)))
	f.Add(good)
	f.Add([]byte(`{"version":1,"key":"` + key(seed) + `","threshold":12,"source":"refined","scores":[1,2,3],"rejects":[true,true,true,true,true,true,true,true,true,true,true,true,true,true,true,true,true,true,true,true,true],"rejects_high":true}`))
	f.Add([]byte(`{"version":1,"key":"` + key(seed) + `","threshold":1e308,"source":"calibrated","fit":{"mu":1e308,"sigma":1e-308,"n":-1}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var st State
		if json.Unmarshal(data, &st) != nil {
			return
		}
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		before := r.Snapshot()
		if err := r.Restore(st, key(r)); err != nil {
			if after := r.Snapshot(); after.Threshold != before.Threshold || after.Observed != before.Observed || after.Rejects != before.Rejects {
				t.Fatalf("refused state changed the Refiner: %+v -> %+v", before, after)
			}
			return
		}
		for i := range 40 {
			r.Observe(float64(i%9)+0.5, i%3 == 0)
			r.ConfirmGood(float64(i))
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if !(r.thresh >= r.lo && r.thresh <= r.hi) || math.IsNaN(r.thresh) {
			t.Fatalf("threshold %v outside [%v, %v]", r.thresh, r.lo, r.hi)
		}
		if len(r.window) > r.cfg.Window || len(r.rejects) > r.cfg.RejectWindow || len(r.good) > MaxConfirmedGood {
			t.Fatalf("windows %d / %d / %d beyond %d / %d / %d", len(r.window), len(r.rejects), len(r.good), r.cfg.Window, r.cfg.RejectWindow, MaxConfirmedGood)
		}
		n := 0
		for _, v := range r.rejects {
			if v {
				n++
			}
		}
		if !(r.cusum >= 0 && r.cusum <= rejectCap) {
			t.Fatalf("reject-rate statistic %v outside [0, %v]", r.cusum, rejectCap)
		}
		if n != r.nRejected {
			t.Fatalf("%d rejects counted, %d in the window", r.nRejected, n)
		}
	})
}
