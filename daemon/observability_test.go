package daemon_test

import (
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The real /metrics endpoint carries the Go and process collectors, the
// build, the broker connection (following an outage) and the spool's
// published, dropped and corrupt counters.
func TestObservabilityMetrics(t *testing.T) {
	f := newFixture(t, 31)
	hot := filepath.Join(f.dir, "hot")
	dropParts(t, hot, 0, 3)
	d, _ := startDaemon(t, f.config(t, "dir:"+hot))
	waitFor(t, "3 events acknowledged", 60*time.Second, func() bool { return scrape(t, d, "inspectd_events_published_total") == 3 })
	body := metricsText(t, d.HTTPAddr())
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^go_goroutines \d+`),
		regexp.MustCompile(`(?m)^go_memstats_heap_alloc_bytes \S+`),
		regexp.MustCompile(`(?m)^process_resident_memory_bytes \S+`),
		regexp.MustCompile(`(?m)^process_open_fds \d+`),
		regexp.MustCompile(`(?m)^inspectd_build_info\{goversion="go[^"]+",revision="[^"]+",version="test"\} 1$`),
		regexp.MustCompile(`(?m)^inspectd_mqtt_connected 1$`),
		regexp.MustCompile(`(?m)^inspectd_spool_dropped_total 0$`),
		regexp.MustCompile(`(?m)^inspectd_spool_corrupt_total 0$`),
	} {
		if !want.MatchString(body) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	f.broker.Stop()
	waitFor(t, "inspectd_mqtt_connected 0 with the broker down", 30*time.Second, func() bool { return scrape(t, d, "inspectd_mqtt_connected") == 0 })
	f.broker.Start()
	waitFor(t, "inspectd_mqtt_connected 1 again", 60*time.Second, func() bool { return scrape(t, d, "inspectd_mqtt_connected") == 1 })
}

// notifySocket is systemd's side of sd_notify: a unixgram socket whose
// datagrams are kept.
type notifySocket struct {
	mu   sync.Mutex
	msgs []string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	n := &notifySocket{}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

// has reports whether a datagram matched re.
func (n *notifySocket) has(re *regexp.Regexp) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.msgs {
		if re.MatchString(m) {
			return true
		}
	}
	return false
}

// sd_notify against a real unixgram socket: readiness, STATUS= lines that
// follow the state (running, the broker going down) and stopping.
func TestSdNotifyStatus(t *testing.T) {
	f := newFixture(t, 32)
	sock := listenNotify(t)
	hot := filepath.Join(f.dir, "hot")
	dropParts(t, hot, 0, 2)
	d, stop := startDaemon(t, f.config(t, "dir:"+hot))
	model := regexp.QuoteMeta(d.Status().ModelID)
	steps := []struct {
		what string
		do   func()
		want *regexp.Regexp
	}{
		{"ready", nil, regexp.MustCompile(`^READY=1$`)},
		{"running", nil, regexp.MustCompile(`^STATUS=running: [0-9.]+ inspections/s, model ` + model + `, threshold \S+ \(calibrated\), MQTT connected, spool \d+$`)},
		{"broker down", f.broker.Stop, regexp.MustCompile(`^STATUS=\w+: .*MQTT down`)},
		{"stopping", stop, regexp.MustCompile(`^STOPPING=1$`)},
		{"stopping status", nil, regexp.MustCompile(`^STATUS=stopping: `)},
	}
	for _, s := range steps {
		if s.do != nil {
			s.do()
		}
		waitFor(t, s.what+" notification", 30*time.Second, func() bool { return sock.has(s.want) })
	}
	sock.mu.Lock()
	defer sock.mu.Unlock()
	for _, m := range sock.msgs {
		if strings.Contains(m, "\n") && strings.HasPrefix(m, "STATUS=") {
			t.Errorf("STATUS over several lines: %q", m)
		}
	}
	t.Logf("sd_notify: %q", sock.msgs)
}
