package daemon_test

import (
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/internal/testenv"
)

func TestMetricsAndHealth(t *testing.T) {
	f := newFixture(t, 8)
	hot := f.dir + "/hot"
	dropParts(t, hot, 0, 3)
	cfg := f.config(t, "dir:"+hot)
	d, _ := startDaemon(t, cfg)
	for deadline := time.Now().Add(60 * time.Second); d.Inspected() < 3; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no inspections")
		}
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + d.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{"inspectd_frames_total 3", "inspectd_inspections_total{verdict=", "inspectd_score_bucket",
		"inspectd_inference_seconds_count 3", "inspectd_spool_depth", "inspectd_capture_reconnects_total", "inspectd_model_info{"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, `"state":"running"`) {
		t.Errorf("/healthz: %d %s", code, body)
	}
}

// TestSoak runs the daemon on the sample video for INSPECTD_SOAK (default
// 20s) and checks that live GoCV Mats (with -tags matprofile) and goroutines
// do not grow between the first and the last quarter.
func TestSoak(t *testing.T) {
	dur := 20 * time.Second
	if s := os.Getenv("INSPECTD_SOAK"); s != "" {
		var err error
		if dur, err = time.ParseDuration(s); err != nil {
			t.Fatalf("INSPECTD_SOAK=%q: %v", s, err)
		}
	}
	f := newFixture(t, 9)
	t.Setenv("INSPECTD_SOURCE_LOOP", "true")
	t.Setenv("INSPECTD_MAX_RATE", "50")
	cfg := f.config(t, testenv.RepoRoot()+"/testdata/line.avi")
	d, stop := startDaemon(t, cfg)
	time.Sleep(dur / 4)
	mats0, gor0, n0 := liveMats(), runtime.NumGoroutine(), d.Inspected()
	time.Sleep(dur * 3 / 4)
	mats1, gor1, n1 := liveMats(), runtime.NumGoroutine(), d.Inspected()
	stop()
	t.Logf("soak %v: %d inspections; live Mats %d -> %d; goroutines %d -> %d", dur, n1, mats0, mats1, gor0, gor1)
	if n1-n0 < 10 {
		t.Fatalf("only %d inspections in the measured part of the soak", n1-n0)
	}
	// A frame or two may be in flight at either instant.
	if mats0 >= 0 && mats1 > mats0+4 {
		t.Errorf("live Mats grew from %d to %d", mats0, mats1)
	}
	if gor1 > gor0+5 {
		t.Errorf("goroutines grew from %d to %d", gor0, gor1)
	}
	if mats0 >= 0 {
		if left := liveMats(); left > 0 {
			t.Errorf("%d Mats still live after the daemon stopped", left)
		}
	}
}
