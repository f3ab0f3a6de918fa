package daemon_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/alerts"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/synth"
)

// dropShaped writes one good part of w x h pixels into a hot folder.
func dropShaped(t *testing.T, dir, name string, seed int64, w, h int) {
	t.Helper()
	img := synth.Good(seed, partSize)
	defer img.Close()
	dropImage(t, filepath.Join(dir, name), imageops.Resize(img, w, h))
}

// A part of another shape than the good parts (a wrong crop, a moved
// camera) is scored, and its event, the status and the metrics say so; the
// status recovers with the next part of the right shape.
func TestOffShapePartFlagged(t *testing.T) {
	f := newFixture(t, 41)
	hot := filepath.Join(f.dir, "hot")
	dropParts(t, hot, 0, 1)
	sub := subscribe(t, f.broker.URL(), "cam0")
	d, _ := startDaemon(t, f.config(t, "dir:"+hot))
	sub.waitEvents(t, 1, 60*time.Second)
	steps := []struct {
		w, h int
		off  bool
	}{{3 * partSize, partSize, true}, {partSize, partSize, false}}
	for i, s := range steps {
		dropShaped(t, hot, fmt.Sprintf("shaped%d.png", i), int64(500+i), s.w, s.h)
		ev := sub.waitEvents(t, i+2, 60*time.Second)[i+1]
		if ev.Verdict == alerts.VerdictError || ev.Score <= 0 {
			t.Fatalf("%dx%d part: event %+v, want it scored", s.w, s.h, ev)
		}
		if (ev.OffShape != "") != s.off || s.off && !strings.Contains(ev.OffShape, fmt.Sprintf("%dx%d", s.w, s.h)) {
			t.Errorf("%dx%d part: off_shape %q, want off %v", s.w, s.h, ev.OffShape, s.off)
		}
		waitFor(t, fmt.Sprintf("status after the %dx%d part", s.w, s.h), 10*time.Second, func() bool {
			sub.mu.Lock()
			defer sub.mu.Unlock()
			if len(sub.status) == 0 {
				return false
			}
			st := sub.status[len(sub.status)-1]
			if s.off {
				return st.State == alerts.StateDegraded && strings.Contains(st.LastError, "off shape")
			}
			return st.State == alerts.StateRunning && !strings.Contains(st.LastError, "off shape")
		})
	}
	if n := scrape(t, d, "inspectd_off_shape_total"); n != 1 {
		t.Errorf("inspectd_off_shape_total %v, want 1", n)
	}
	// The operating point (refinement, drift) saw the two parts of the
	// right shape only.
	if op := d.Status().Operating; op == nil || op.Inspections != 2 {
		t.Errorf("operating point %+v, want 2 inspections seen", op)
	}
}
