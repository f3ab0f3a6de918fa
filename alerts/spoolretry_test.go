package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// failingWrites makes the spool's writes fail with ENOSPC while full is set.
func failingWrites(s *spool, full *atomic.Bool) {
	s.write = func(path string, data []byte) error {
		if full.Load() {
			return fmt.Errorf("write %s: %w", path, syscall.ENOSPC)
		}
		return writeFileAtomic(path, data)
	}
}

// A spool write that fails (disk full) keeps the entry in memory, in order,
// and a later flush writes it; entries appended meanwhile queue behind it.
func TestSpoolHoldsAndFlushesFailedWrites(t *testing.T) {
	var full atomic.Bool
	cases := []struct {
		name      string
		failFirst int // appends made while the disk is full
		after     int // appends after space is freed, before the flush
		want      []string
	}{
		{"nothing failed", 0, 2, []string{"b0", "b1"}},
		{"one failed", 1, 0, []string{"a0"}},
		{"failed then more", 3, 2, []string{"a0", "a1", "a2", "b0", "b1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _ := openTestSpool(t, t.TempDir(), 1<<20, 100)
			failingWrites(s, &full)
			full.Store(true)
			for i := range c.failFirst {
				if _, err := s.append(eventJSON(fmt.Sprint("a", i)), nil); !errors.Is(err, ErrNotDurable) || !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("append on a full disk: %v; want ErrNotDurable wrapping ENOSPC", err)
				}
			}
			// One failed write; the entries behind it wait without trying.
			if held, errs, last := s.health(); held != c.failFirst || errs != uint64(min(c.failFirst, 1)) || (c.failFirst > 0) != strings.Contains(last, "no space") {
				t.Fatalf("health %d held, %d errors, %q", held, errs, last)
			}
			if n, err := s.flush(); c.failFirst > 0 && (n != 0 || err == nil) {
				t.Fatalf("flush on a full disk wrote %d (%v)", n, err)
			}
			full.Store(false)
			for i := range c.after {
				_, err := s.append(eventJSON(fmt.Sprint("b", i)), nil)
				if (c.failFirst > 0) != errors.Is(err, ErrNotDurable) {
					t.Fatalf("append behind held entries: %v", err)
				}
			}
			if n, err := s.flush(); err != nil || (c.failFirst > 0 && n != c.failFirst+c.after) {
				t.Fatalf("flush wrote %d: %v", n, err)
			}
			if held, _, last := s.health(); held != 0 || last != "" {
				t.Fatalf("after the flush: %d held, error %q", held, last)
			}
			if got := drain(t, s); strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Fatalf("spool holds %v; want %v", got, c.want)
			}
		})
	}
}

// Disk full while spooling, then space freed: the events that could not be
// written are written and sent without a restart, in order, and the status
// shows the problem meanwhile. On main they were never retried until restart
// and /healthz said running with spool_depth 0.
func TestPublisherRetriesSpoolWrites(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	const camera = "cam-full"
	events := subscribe(t, b.url("tcp"), TopicsFor(DefaultTopicPrefix, camera).Event, subOptions{})
	p := newPublisher(t, testConfig(t, b.url("tcp"), camera))
	eventually(t, 3*time.Second, "connection", p.Connected)
	var full atomic.Bool
	failingWrites(p.spool, &full)
	full.Store(true)
	for i := range 3 {
		err := p.Publish(context.Background(), Event{ID: fmt.Sprintf("e%d", i), Verdict: VerdictOK}, nil)
		if !errors.Is(err, ErrNotDurable) {
			t.Fatalf("Publish on a full disk: %v; want ErrNotDurable", err)
		}
	}
	st := p.Stats()
	if st.SpoolHeld != 3 || !strings.Contains(st.SpoolError, "no space left") {
		t.Fatalf("stats while the disk is full: %+v", st)
	}
	full.Store(false)
	for i := range 3 {
		m := next(t, events, 5*time.Second, nil)
		var ev Event
		json.Unmarshal(m.payload, &ev)
		if ev.ID != fmt.Sprintf("e%d", i) {
			t.Fatalf("event %d is %q", i, ev.ID)
		}
	}
	eventually(t, 3*time.Second, "spool error cleared", func() bool {
		st := p.Stats()
		return st.SpoolHeld == 0 && st.SpoolError == "" && st.SpoolWriteErrors >= 1
	})
}
