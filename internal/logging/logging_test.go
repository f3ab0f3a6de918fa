package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestJournalPriorities(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, Journal, slog.LevelDebug).With("camera", "cam0")
	log.Debug("d")
	log.Info("i", "broker", "tcp://user:secret@host:1883")
	log.Warn("w")
	log.Error("e")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{"<7>level=DEBUG msg=d camera=cam0", "<6>level=INFO msg=i camera=cam0 broker=tcp://***@host:1883",
		"<4>level=WARN msg=w camera=cam0", "<3>level=ERROR msg=e camera=cam0"}
	if len(lines) != len(want) {
		t.Fatalf("lines %q", lines)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d %q; want %q", i, lines[i], want[i])
		}
	}
}

// Concurrent records keep their own priority: the prefix is set and
// written under one lock.
func TestJournalConcurrent(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, Journal, slog.LevelInfo)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				if j%2 == 0 {
					log.Error("bad", "n", j)
				} else {
					log.Info("fine", "n", j)
				}
			}
		}()
	}
	wg.Wait()
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if !(strings.HasPrefix(l, "<3>level=ERROR msg=bad") || strings.HasPrefix(l, "<6>level=INFO msg=fine")) {
			t.Fatalf("line %q", l)
		}
	}
}

func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, JSON, slog.LevelInfo).Warn("spool full", "url", "rtsp://a:b@cam/x", "dropped", 3)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	if rec["level"] != "WARN" || rec["msg"] != "spool full" || rec["dropped"] != 3.0 || rec["url"] != "rtsp://***@cam/x" || rec["time"] == nil {
		t.Errorf("record %v", rec)
	}
}

func TestResolve(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	mine := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	cases := []struct {
		f      Format
		stream string
		w      any
		want   Format
	}{
		{Auto, mine, f, Journal},
		{Auto, "", f, Text},
		{Auto, fmt.Sprintf("%d:%d", st.Dev, st.Ino+1), f, Text}, // inherited by a shell: another stream
		{Auto, "garbage", f, Text},
		{Auto, mine, &bytes.Buffer{}, Text},
		{JSON, mine, f, JSON},
		{Text, mine, f, Text},
	}
	for _, c := range cases {
		w, _ := c.w.(interface{ Write([]byte) (int, error) })
		if got := Resolve(c.f, c.stream, w); got != c.want {
			t.Errorf("Resolve(%s, %q, %T) = %s; want %s", c.f, c.stream, c.w, got, c.want)
		}
	}
}
