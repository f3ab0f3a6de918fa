package progress

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock advances only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{-time.Second, "0s"},
		{400 * time.Millisecond, "0s"},
		{59400 * time.Millisecond, "59s"},
		{59600 * time.Millisecond, "1m00s"},
		{61 * time.Second, "1m01s"},
		{59*time.Minute + 59*time.Second, "59m59s"},
		{time.Hour + 2*time.Minute + 5*time.Second, "1h02m"},
		{26 * time.Hour, "26h00m"},
	}
	for _, tc := range tests {
		if got := FormatDuration(tc.d); got != tc.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// Sixteen calibration images, three seconds each, into a log: one line per
// 10% step crossed, with ETA = elapsed/done * remaining.
func TestPlainLines(t *testing.T) {
	clk := newClock()
	var buf bytes.Buffer
	b := New(&buf, 16, "calibrate", WithClock(clk.now))
	for range 16 {
		clk.advance(3 * time.Second)
		b.Add(1)
	}
	b.Done()
	b.Done() // idempotent
	b.Add(1) // ignored after Done

	var want []string
	next := 10
	for done := 1; done <= 16; done++ {
		pct := done * 100 / 16
		if pct < next {
			continue
		}
		next = (pct/10 + 1) * 10
		elapsed := time.Duration(done*3) * time.Second
		eta := time.Duration(16-done) * 3 * time.Second
		want = append(want, fmt.Sprintf("calibrate: %d/16 (%d%%) elapsed %s, ETA %s",
			done, pct, FormatDuration(elapsed), FormatDuration(eta)))
	}
	want = append(want, "calibrate: 16/16 done in 48s")
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Spot-check one line by hand: 4 of 16 after 12 s leaves 12 s.
	if !strings.Contains(buf.String(), "calibrate: 4/16 (25%) elapsed 12s, ETA 36s\n") {
		t.Errorf("missing the 25%% line in:\n%s", buf.String())
	}
	if strings.Contains(buf.String(), "\r") {
		t.Error("plain output contains carriage returns")
	}
}

func TestPlainBigStepsAndUnknownTotal(t *testing.T) {
	clk := newClock()
	var buf bytes.Buffer
	b := New(&buf, 10, "x", WithClock(clk.now))
	clk.advance(time.Minute)
	b.Add(7) // one line for crossing 10..70 at once
	b.Done()
	want := "x: 7/10 (70%) elapsed 1m00s, ETA 26s\nx: 7/10 done in 1m00s\n"
	if buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}

	buf.Reset()
	u := New(&buf, 0, "frames", WithClock(clk.now))
	for range 30 {
		clk.advance(time.Second)
		u.Add(2)
	}
	u.Done()
	want = "frames: 20 elapsed 10s\nframes: 40 elapsed 20s\nframes: 60 elapsed 30s\nframes: 60 done in 30s\n"
	if buf.String() != want {
		t.Errorf("unknown total: got %q, want %q", buf.String(), want)
	}
}

func TestTerminalRedrawRateLimited(t *testing.T) {
	clk := newClock()
	var buf bytes.Buffer
	b := New(&buf, 1000, "train", WithClock(clk.now), WithTerminal(true))
	for range 1000 {
		clk.advance(10 * time.Millisecond) // 10 s in all
		b.Add(1)
	}
	b.Done()
	out := buf.String()
	draws := strings.Count(out, "\r")
	// 10 s at <= 10 redraws/s, plus the completing draw and the final line.
	if draws > 102 || draws < 90 {
		t.Errorf("%d redraws in 10 s, want about 100", draws)
	}
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Errorf("want exactly one trailing newline, got %q", out[max(0, len(out)-80):])
	}
	if !strings.Contains(out, "\rtrain [============>           ] 500/1000  50% elapsed 5s ETA 5s") {
		t.Errorf("missing the half-way bar in output")
	}
	if !strings.Contains(out, "\rtrain: 1000/1000 done in 10s") {
		t.Errorf("missing final line: %q", out[max(0, len(out)-80):])
	}
	// The shorter final line must blank the longer bar it replaces.
	last := out[strings.LastIndex(out, "\r")+1 : len(out)-1]
	prev := out[strings.LastIndex(out[:strings.LastIndex(out, "\r")], "\r")+1 : strings.LastIndex(out, "\r")]
	if len(last) != len(prev) {
		t.Errorf("final line %d chars, previous %d: leftovers would show", len(last), len(prev))
	}
}

func TestConcurrentAdd(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, 8000, "c")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				b.Add(1)
			}
		})
	}
	wg.Wait()
	b.Done()
	if !strings.Contains(buf.String(), "c: 8000/8000 done in") {
		t.Errorf("lost counts: %q", buf.String())
	}
	if n := strings.Count(buf.String(), "\n"); n != 11 {
		t.Errorf("%d lines, want 10 progress lines + final", n)
	}
}

func TestDetectsNonTerminalFile(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := New(f, 2, "f")
	if b.term {
		t.Error("a regular file was taken for a terminal")
	}
}
