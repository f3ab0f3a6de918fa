// Package progress draws a small progress bar with an ETA for long operator
// commands such as `inspectd calibrate`.
//
// On a terminal the bar is redrawn in place at most ten times a second; into
// a pipe, file or log it writes a plain line at every 10% instead, so logs
// stay readable.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

const (
	redrawEvery  = 100 * time.Millisecond
	unknownEvery = 10 * time.Second // plain-mode lines when the total is unknown
	barWidth     = 24
)

// Option configures a Bar.
type Option func(*Bar)

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(b *Bar) { b.now = now } }

// WithTerminal forces in-place redrawing on or off instead of detecting it.
func WithTerminal(on bool) Option { return func(b *Bar) { b.term = on } }

// Bar tracks progress towards total units of work. It is safe for concurrent
// use. Write errors are ignored: progress output must never fail the work.
type Bar struct {
	mu       sync.Mutex
	w        io.Writer
	total    int
	label    string
	now      func() time.Time
	term     bool
	start    time.Time
	done     int
	lastDraw time.Time
	nextPct  int // plain mode: print when the percentage reaches this
	drawnLen int // terminal mode: length of the last line, to blank leftovers
	finished bool
}

// New starts a bar for total units (total <= 0 if unknown) labelled label.
func New(w io.Writer, total int, label string, opts ...Option) *Bar {
	b := &Bar{w: w, total: total, label: label, now: time.Now, nextPct: 10}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		b.term = true
	}
	for _, o := range opts {
		o(b)
	}
	b.start = b.now()
	b.lastDraw = b.start
	return b
}

// Add records n more units done.
func (b *Bar) Add(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished || n <= 0 {
		return
	}
	b.done += n
	now := b.now()
	complete := b.total > 0 && b.done >= b.total
	if b.term {
		if complete || now.Sub(b.lastDraw) >= redrawEvery {
			b.redraw(b.line(now, true))
			b.lastDraw = now
		}
		return
	}
	if b.total <= 0 {
		if now.Sub(b.lastDraw) >= unknownEvery {
			fmt.Fprintln(b.w, b.line(now, false))
			b.lastDraw = now
		}
		return
	}
	if pct := b.percent(); pct >= b.nextPct {
		fmt.Fprintln(b.w, b.line(now, false))
		b.nextPct = (pct/10 + 1) * 10
	}
}

// Done writes the final line. Later calls to Add and Done do nothing.
func (b *Bar) Done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.finished = true
	now := b.now()
	count := fmt.Sprint(b.done)
	if b.total > 0 {
		count = fmt.Sprintf("%d/%d", b.done, b.total)
	}
	msg := fmt.Sprintf("%s: %s done in %s", b.label, count, FormatDuration(now.Sub(b.start)))
	if b.term {
		b.redraw(msg)
		fmt.Fprintln(b.w)
		return
	}
	fmt.Fprintln(b.w, msg)
}

func (b *Bar) percent() int {
	if b.total <= 0 {
		return 0
	}
	return min(100, b.done*100/b.total)
}

// line renders the current state; bar adds the [====>   ] graphic.
func (b *Bar) line(now time.Time, bar bool) string {
	elapsed := now.Sub(b.start)
	if b.total <= 0 {
		return fmt.Sprintf("%s: %d elapsed %s", b.label, b.done, FormatDuration(elapsed))
	}
	eta := "?"
	if b.done > 0 {
		left := max(0, b.total-b.done)
		eta = FormatDuration(time.Duration(float64(elapsed) * float64(left) / float64(b.done)))
	}
	pct := b.percent()
	if !bar {
		return fmt.Sprintf("%s: %d/%d (%d%%) elapsed %s, ETA %s", b.label, b.done, b.total, pct, FormatDuration(elapsed), eta)
	}
	fill := pct * barWidth / 100
	g := strings.Repeat("=", fill)
	if fill < barWidth {
		g += ">" + strings.Repeat(" ", barWidth-fill-1)
	}
	return fmt.Sprintf("%s [%s] %d/%d %3d%% elapsed %s ETA %s", b.label, g, b.done, b.total, pct, FormatDuration(elapsed), eta)
}

// redraw overwrites the current terminal line, blanking what a longer
// previous line left behind.
func (b *Bar) redraw(s string) {
	pad := max(0, b.drawnLen-len(s))
	fmt.Fprintf(b.w, "\r%s%s", s, strings.Repeat(" ", pad))
	b.drawnLen = len(s)
}

// FormatDuration renders d for humans at a resolution that fits progress
// reporting: "42s", "3m05s", "1h02m".
func FormatDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	default:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
}

// Stages reports the stages of a long job (calibration's "features",
// "candidates", ...) as one bar each on w: animated on a terminal, sparse
// lines otherwise. report(stage, done, total) advances a stage's bar by one;
// finish ends every bar still open.
func Stages(w io.Writer) (report func(stage string, done, total int), finish func()) {
	isTerm := false
	if f, ok := w.(*os.File); ok {
		isTerm = term.IsTerminal(int(f.Fd()))
	}
	bars := map[string]*Bar{}
	report = func(stage string, done, total int) {
		b := bars[stage]
		if b == nil {
			b = New(w, total, stage, WithTerminal(isTerm))
			bars[stage] = b
		}
		b.Add(1)
		if done == total {
			b.Done()
			delete(bars, stage) // a later run of the stage starts a fresh bar
		}
	}
	return report, func() {
		for _, b := range bars {
			b.Done()
		}
	}
}
