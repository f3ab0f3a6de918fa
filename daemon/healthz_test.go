package daemon_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/inspectd/inspectd/alerts"
)

// With the broker unreachable, the events wait in the spool and /healthz
// says how many (on main it always said spool_depth 0: the counters were
// only filled in on the status topic's copy).
func TestHealthzShowsSpool(t *testing.T) {
	f := newFixture(t, 12)
	hot := filepath.Join(f.dir, "hot")
	dropParts(t, hot, 0, 2)
	cfg := f.config(t, "dir:"+hot)
	cfg.Broker = fmt.Sprintf("tcp://127.0.0.1:%d", closedPort(t))
	d, _ := startDaemon(t, cfg)
	for deadline := time.Now().Add(30 * time.Second); d.Inspected() < 2 || d.HTTPAddr() == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d parts inspected", d.Inspected())
		}
	}
	resp, err := http.Get("http://" + d.HTTPAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st alerts.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || st.SpoolDepth != 2 || st.EventsPublished != 0 {
		t.Fatalf("/healthz %d: %+v; want spool_depth 2", resp.StatusCode, st)
	}
}
