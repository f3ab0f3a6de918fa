package capture

import (
	"math"
	"testing"
	"time"
)

func TestSourceClock(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	ms := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Millisecond))) }
	type frame struct {
		arrival, pos float64 // ms after t0; ms of source time
		want         float64 // ms after t0
	}
	cases := []struct {
		name   string
		frames []frame
	}{
		{"a probe's backlog is stamped with the open time, live frames with source time", []frame{
			// Opened at 0; 10 frames of 100 ms each arrive in a burst at 1000.
			{1000, 0, 0}, {1001, 100, 0}, {1002, 200, 0},
			// Then one per 100 ms, each 20 ms after it was taken at 980+pos.
			{1100, 300, 1100}, {1200, 400, 1200},
			// A frame delayed 50 ms more in the network keeps its time.
			{1350, 500, 1300},
			{1400, 600, 1400},
		}},
		{"a live source from its first frame", []frame{
			{50, 0, 0}, {150, 100, 150}, {250, 200, 250}, {330, 300, 330},
			// The 330 frame was the least delayed: the anchor moves to it.
			{450, 400, 430},
		}},
		{"no usable source time: arrival", []frame{
			{50, -3.7e20, 50}, {150, 0, 150}, {250, 100, 250},
		}},
		{"source time going backwards: arrival from then on", []frame{
			{50, 1000, 0}, {150, 1100, 150}, {250, 500, 250}, {350, 600, 350},
		}},
		{"source time running far ahead of the wall clock: arrival after the backlog limit", []frame{
			{10, 0, 0}, {20, 1000, 0}, {30, 2000, 0}, {6000, 600000, 6000}, {6010, 601000, 6010},
		}},
		{"never later than arrival, never before the open", []frame{
			{100, 5000, 0}, {200, 5100, 200}, {250, 5200, 250},
		}},
		{"not a number", []frame{{100, math.NaN(), 100}}},
		{"source time standing still: arrival from the fourth frame", []frame{
			{50, 0, 0}, {100, 0, 0}, {150, 0, 0}, {200, 0, 200}, {250, 0, 250},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newSourceClock(t0)
			for i, f := range c.frames {
				got := clk.stamp(ms(f.arrival), f.pos)
				// Within a millisecond: the anchor may rise by maxDrift.
				if d := got.Sub(ms(f.want)); d < 0 || d > time.Millisecond {
					t.Errorf("frame %d (arrived %v, source %v ms): stamped %v ms; want %v", i, f.arrival, f.pos, got.Sub(t0).Seconds()*1000, f.want)
				}
			}
		})
	}
}

// A camera whose clock runs slow by 500 ppm: stamps stay within a frame of
// arrival over an hour instead of drifting into the past.
func TestSourceClockFollowsSlowCamera(t *testing.T) {
	t0 := time.Now()
	clk := newSourceClock(t0)
	var last time.Duration
	for i := 0; i <= 36000; i++ { // 10 frames/s for an hour
		arrival := time.Duration(i) * 100 * time.Millisecond
		pos := float64(i) * 100 * (1 - 500e-6)
		got := clk.stamp(t0.Add(arrival+20*time.Millisecond), pos)
		last = t0.Add(arrival).Sub(got)
	}
	if last < -20*time.Millisecond || last > 100*time.Millisecond {
		t.Fatalf("after an hour the stamp is %v off the capture time", last)
	}
}
