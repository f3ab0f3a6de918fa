package alerts

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const childEnv = "INSPECTD_ALERTS_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

// runChild is the publisher process of TestLastWillOnKill: it connects,
// says "ready" and waits to be killed.
func runChild() int {
	cfg := Config{
		Brokers:   []string{os.Getenv("ALERTS_CHILD_BROKER")},
		Camera:    os.Getenv("ALERTS_CHILD_CAMERA"),
		SpoolDir:  os.Getenv("ALERTS_CHILD_SPOOL"),
		KeepAlive: time.Second,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := New(ctx, cfg)
	if err != nil || !p.Connected() {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
	return 0
}

// wantEvent is what a subscriber must find in an event JSON.
type wantEvent struct {
	seq     uint64
	verdict Verdict
	heatmap []byte
}

func TestEventsAndHeatmaps(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	inputs := []wantEvent{
		{seq: 1, verdict: VerdictOK, heatmap: testJPEG(t, 1)},
		{seq: 2, verdict: VerdictDefect, heatmap: testJPEG(t, 2)},
		{seq: 3, verdict: VerdictOK},
		{seq: 4, verdict: VerdictDefect},
	}
	cases := []struct {
		mode     Mode
		wantSeqs []uint64
	}{
		{PerInspection, []uint64{1, 2, 3, 4}},
		{PerDefect, []uint64{2, 4}},
	}
	for _, tc := range cases {
		t.Run(string(tc.mode), func(t *testing.T) {
			camera := "cam-" + string(tc.mode)
			sub := subscribe(t, b.url("tcp"), "inspectd/"+camera+"/#", subOptions{})
			cfg := testConfig(t, b.url("tcp"), camera)
			cfg.Mode = tc.mode
			p := newPublisher(t, cfg)

			avail := next(t, sub, 5*time.Second, func(s string) bool { return strings.HasSuffix(s, "/availability") })
			if string(avail.payload) != "online" {
				t.Errorf("availability = %q, want online", avail.payload)
			}

			start := time.Now()
			for _, in := range inputs {
				ev := Event{Seq: in.seq, PartID: fmt.Sprintf("part-%d", in.seq), Score: 0.5 * float64(in.seq),
					Threshold: 1, Verdict: in.verdict, ModelID: "model-x", LatencyMS: 42.5}
				if err := p.Publish(context.Background(), ev, in.heatmap); err != nil {
					t.Fatalf("Publish %d: %v", in.seq, err)
				}
			}

			seen := map[string]bool{}
			var prevHeatmap *message
			for _, wantSeq := range tc.wantSeqs {
				in := inputs[wantSeq-1]
				m := next(t, sub, 5*time.Second, eventsAndHeatmaps)
				if in.heatmap != nil {
					if !strings.Contains(m.topic, "/heatmap/") {
						t.Fatalf("seq %d: got %s first, want its heatmap before the event", wantSeq, m.topic)
					}
					hm := m
					prevHeatmap = &hm
					m = next(t, sub, 5*time.Second, eventsAndHeatmaps)
				} else {
					prevHeatmap = nil
				}
				if m.topic != "inspectd/"+camera+"/event" {
					t.Fatalf("seq %d: topic %s, want the event topic", wantSeq, m.topic)
				}
				if m.retained {
					t.Errorf("seq %d: event is retained", wantSeq)
				}
				var ev Event
				if err := json.Unmarshal(m.payload, &ev); err != nil {
					t.Fatalf("event JSON: %v\n%s", err, m.payload)
				}
				var raw map[string]any
				_ = json.Unmarshal(m.payload, &raw)
				checks := []struct {
					name string
					ok   bool
				}{
					{"schema", ev.Schema == EventSchema},
					{"id unique", ev.ID != "" && !seen[ev.ID]},
					{"camera", ev.Camera == camera},
					{"seq", ev.Seq == wantSeq},
					{"part_id", ev.PartID == fmt.Sprintf("part-%d", wantSeq)},
					{"score", ev.Score == 0.5*float64(wantSeq)},
					{"threshold", ev.Threshold == 1},
					{"verdict", ev.Verdict == in.verdict},
					{"model_id", ev.ModelID == "model-x"},
					{"latency_ms", ev.LatencyMS == 42.5},
					{"time", !ev.Time.Before(start.Add(-time.Second)) && ev.Time.Location().String() == "UTC"},
				}
				for _, c := range checks {
					if !c.ok {
						t.Errorf("seq %d: field %s wrong in %s", wantSeq, c.name, m.payload)
					}
				}
				seen[ev.ID] = true
				if in.heatmap == nil {
					for _, k := range []string{"heatmap_topic", "heatmap_bytes", "heatmap_sha256"} {
						if _, ok := raw[k]; ok {
							t.Errorf("seq %d: %s present without a heatmap", wantSeq, k)
						}
					}
					continue
				}
				sum := sha256.Sum256(prevHeatmap.payload)
				switch {
				case ev.HeatmapTopic != "inspectd/"+camera+"/heatmap/"+ev.ID:
					t.Errorf("seq %d: heatmap_topic %q does not carry the event id %s", wantSeq, ev.HeatmapTopic, ev.ID)
				case prevHeatmap.topic != ev.HeatmapTopic:
					t.Errorf("seq %d: heatmap arrived on %s, event names %s", wantSeq, prevHeatmap.topic, ev.HeatmapTopic)
				case ev.HeatmapBytes != len(prevHeatmap.payload) || string(prevHeatmap.payload) != string(in.heatmap):
					t.Errorf("seq %d: heatmap %d bytes, event says %d, sent %d", wantSeq, len(prevHeatmap.payload), ev.HeatmapBytes, len(in.heatmap))
				case ev.HeatmapSHA256 != hex.EncodeToString(sum[:]):
					t.Errorf("seq %d: heatmap sha256 %s, event says %s", wantSeq, hex.EncodeToString(sum[:]), ev.HeatmapSHA256)
				}
			}
			eventually(t, 5*time.Second, "spool to empty", func() bool { return p.SpoolDepth() == 0 })
			st := p.Stats()
			if st.Published != uint64(len(tc.wantSeqs)) || st.Skipped != uint64(len(inputs)-len(tc.wantSeqs)) {
				t.Errorf("stats published=%d skipped=%d, want %d and %d", st.Published, st.Skipped, len(tc.wantSeqs), len(inputs)-len(tc.wantSeqs))
			}
		})
	}
}

func TestPublishRejectsBadEvents(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	p := newPublisher(t, testConfig(t, b.url("tcp"), "cam-bad"))
	cases := []struct {
		name    string
		ev      Event
		heatmap []byte
		want    string
	}{
		{"unknown verdict", Event{Verdict: "maybe"}, nil, "verdict"},
		{"NaN score", Event{Verdict: VerdictOK, Score: nan()}, nil, "score"},
		{"other camera", Event{Verdict: VerdictOK, Camera: "cam9"}, nil, "camera"},
		{"id with slash", Event{Verdict: VerdictOK, ID: "a/b"}, nil, "id"},
		{"PNG heatmap", Event{Verdict: VerdictOK}, []byte("\x89PNG\r\n\x1a\n...."), "JPEG"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Publish(context.Background(), tc.ev, tc.heatmap)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	if d := p.SpoolDepth(); d != 0 {
		t.Errorf("rejected events reached the spool: depth %d", d)
	}
}

func nan() float64 { var z float64; return z / z }

func TestStatusRetainedAndRateLimited(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	const camera = "cam-status"
	early := subscribe(t, b.url("tcp"), "inspectd/"+camera+"/status", subOptions{})
	cfg := testConfig(t, b.url("tcp"), camera)
	cfg.StatusInterval = 300 * time.Millisecond
	p := newPublisher(t, cfg)

	const calls = 50
	began := time.Now()
	for i := range calls {
		p.SetStatus(Status{State: StateRunning, FPS: float64(i), ModelID: "m1", Provider: "onnx", Version: "v0.1"})
		time.Sleep(5 * time.Millisecond) // 250 ms of calls
	}
	elapsed := time.Since(began)
	var last Status
	count := 0
	for last.FPS != calls-1 {
		m := next(t, early, 3*time.Second, nil)
		count++
		if err := json.Unmarshal(m.payload, &last); err != nil {
			t.Fatalf("status JSON: %v", err)
		}
	}
	// One message per 300 ms at most: the first at once, then merged ones.
	if limit := 2 + int(elapsed/cfg.StatusInterval); count > limit {
		t.Errorf("%d status messages for %d calls in %v, want at most %d (one per %v)", count, calls, elapsed, limit, cfg.StatusInterval)
	}
	if last.Schema != StatusSchema || last.Camera != camera || last.Provider != "onnx" || last.Time.IsZero() {
		t.Errorf("status fields wrong: %+v", last)
	}

	late := subscribe(t, b.url("tcp"), "inspectd/"+camera+"/status", subOptions{})
	m := next(t, late, 3*time.Second, nil)
	var got Status
	if err := json.Unmarshal(m.payload, &got); err != nil {
		t.Fatal(err)
	}
	if !m.retained || got.FPS != calls-1 {
		t.Errorf("late subscriber got retained=%v fps=%v, want the retained last status (fps %d)", m.retained, got.FPS, calls-1)
	}
}

func TestLastWillOnKill(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	const camera = "cam-child"
	sub := subscribe(t, b.url("tcp"), "inspectd/"+camera+"/availability", subOptions{})

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1",
		"ALERTS_CHILD_BROKER="+b.url("tcp"), "ALERTS_CHILD_CAMERA="+camera, "ALERTS_CHILD_SPOOL="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting child publisher: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("child publisher: %q, %v", line, err)
	}
	if m := next(t, sub, 5*time.Second, nil); string(m.payload) != "online" {
		t.Fatalf("availability = %q, want online", m.payload)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	m := next(t, sub, 5*time.Second, nil)
	if string(m.payload) != "offline" {
		t.Fatalf("after SIGKILL availability = %q, want offline (the Last Will)", m.payload)
	}
	t.Logf("Last Will arrived %v after SIGKILL", time.Since(killed).Round(time.Millisecond))

	late := subscribe(t, b.url("tcp"), "inspectd/"+camera+"/availability", subOptions{})
	if m := next(t, late, 3*time.Second, nil); string(m.payload) != "offline" || !m.retained {
		t.Errorf("late subscriber: %q retained=%v, want retained offline", m.payload, m.retained)
	}
}

func TestCloseSendsOffline(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	const camera = "cam-close"
	sub := subscribe(t, b.url("tcp"), "inspectd/"+camera+"/#", subOptions{})
	p := newPublisher(t, testConfig(t, b.url("tcp"), camera))
	if m := next(t, sub, 5*time.Second, nil); string(m.payload) != "online" {
		t.Fatalf("availability = %q, want online", m.payload)
	}
	if err := p.Publish(context.Background(), Event{Seq: 7, Verdict: VerdictDefect}, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close flushes the spool before going offline.
	if m := next(t, sub, 3*time.Second, nil); !strings.HasSuffix(m.topic, "/event") {
		t.Fatalf("got %s, want the event before offline", m.topic)
	}
	if m := next(t, sub, 3*time.Second, nil); !strings.HasSuffix(m.topic, "/availability") || string(m.payload) != "offline" {
		t.Fatalf("got %s %q, want availability offline", m.topic, m.payload)
	}
	if err := p.Publish(context.Background(), Event{Verdict: VerdictOK}, nil); err != ErrClosed {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	if _, open := <-p.Trigger(); open {
		t.Error("Trigger channel still open after Close")
	}
}

func TestTriggerRoundTrip(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	const camera = "cam-trig"
	topic := TopicsFor(DefaultTopicPrefix, camera).Trigger
	// A retained trigger left on the broker must not fire at connect.
	publishRaw(t, b.url("tcp"), topic, []byte("stale"), true)
	p := newPublisher(t, testConfig(t, b.url("tcp"), camera))
	eventually(t, 3*time.Second, "connection", p.Connected)
	time.Sleep(200 * time.Millisecond) // let the subscription settle

	cases := []struct{ payload, want string }{
		{"part-42", "part-42"},
		{"", ""},
		{"  P/7 \n", "P/7"},
	}
	for _, tc := range cases {
		sent := time.Now()
		publishRaw(t, b.url("tcp"), topic, []byte(tc.payload), false)
		select {
		case tr := <-p.Trigger():
			if tr.PartID != tc.want {
				t.Errorf("payload %q: PartID %q, want %q", tc.payload, tr.PartID, tc.want)
			}
			if tr.Time.Before(sent.Add(-time.Second)) {
				t.Errorf("payload %q: trigger time %v before it was sent", tc.payload, tr.Time)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("payload %q: no trigger delivered", tc.payload)
		}
	}
	select {
	case tr := <-p.Trigger():
		t.Errorf("unexpected trigger %+v (a retained trigger must be ignored)", tr)
	case <-time.After(200 * time.Millisecond):
	}

	// The clean session forgets the subscription with the connection: it
	// must be renewed on reconnect.
	b.stop()
	eventually(t, 5*time.Second, "publisher to notice the outage", func() bool { return !p.Connected() })
	b.start()
	eventually(t, 5*time.Second, "reconnection", p.Connected)
	deadline := time.Now().Add(5 * time.Second)
	for {
		publishRaw(t, b.url("tcp"), topic, []byte("after-restart"), false)
		select {
		case tr := <-p.Trigger():
			if tr.PartID != "after-restart" {
				t.Errorf("after reconnect: PartID %q", tr.PartID)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no trigger delivered after the broker restarted: not resubscribed")
		}
	}
}

// collector reads events as a subscriber must: dropping duplicates by id
// (delivery is at least once) and pairing heatmaps with events by the id in
// the topic. It checks each event's heatmap arrived before the event.
// (Right after a broker restart a redelivered duplicate may sit between a
// heatmap and its event, so adjacency is checked only in TestEventsAndHeatmaps.)
type collector struct {
	sub        <-chan message
	seen       map[string]bool
	heatmaps   map[string]bool // topics received
	duplicates int
}

func newCollector(sub <-chan message) *collector {
	return &collector{sub: sub, seen: map[string]bool{}, heatmaps: map[string]bool{}}
}

// events returns the next n distinct events.
func (c *collector) events(t *testing.T, n int, timeout time.Duration) []Event {
	t.Helper()
	var out []Event
	deadline := time.Now().Add(timeout)
	for len(out) < n {
		m := next(t, c.sub, time.Until(deadline), eventsAndHeatmaps)
		if strings.Contains(m.topic, "/heatmap/") {
			c.heatmaps[m.topic] = true
			continue
		}
		var ev Event
		if err := json.Unmarshal(m.payload, &ev); err != nil {
			t.Fatalf("event JSON: %v", err)
		}
		if ev.HeatmapTopic != "" && !c.heatmaps[ev.HeatmapTopic] {
			t.Errorf("event %d: its heatmap %s did not arrive before it", ev.Seq, ev.HeatmapTopic)
		}
		if c.seen[ev.ID] {
			c.duplicates++
			continue
		}
		c.seen[ev.ID] = true
		out = append(out, ev)
	}
	return out
}

func checkSeqs(t *testing.T, evs []Event, want []uint64) {
	t.Helper()
	got := make([]uint64, len(evs))
	for i, ev := range evs {
		got[i] = ev.Seq
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events arrived as seq %v, want %v", got, want)
	}
}

func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func TestBrokerOutage(t *testing.T) {
	b := startBroker(t, brokerOptions{persistence: true})
	const camera, n = "cam-outage", 20
	// A persistent session keeps the subscriber's queue while the broker
	// restarts, as a SCADA subscriber would.
	sub := newCollector(subscribe(t, b.url("tcp"), "inspectd/"+camera+"/#", subOptions{clientID: "scada-outage"}))
	p := newPublisher(t, testConfig(t, b.url("tcp"), camera))
	if err := p.Publish(context.Background(), Event{Seq: 0, Verdict: VerdictOK}, nil); err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, sub.events(t, 1, 5*time.Second), []uint64{0})

	b.stop()
	eventually(t, 5*time.Second, "publisher to notice the outage", func() bool { return !p.Connected() })
	for i := uint64(1); i <= n; i++ {
		var hm []byte
		if i%3 == 0 {
			hm = testJPEG(t, int(i))
		}
		if err := p.Publish(context.Background(), Event{Seq: i, Verdict: VerdictDefect}, hm); err != nil {
			t.Fatalf("Publish %d while broker down: %v", i, err)
		}
	}
	if d := p.SpoolDepth(); d != n {
		t.Errorf("spool depth while broker down = %d, want %d", d, n)
	}
	restarted := time.Now()
	b.start()
	checkSeqs(t, sub.events(t, n, 15*time.Second), seqRange(1, n))
	t.Logf("%d spooled events delivered %v after broker restart", n, time.Since(restarted).Round(time.Millisecond))
	eventually(t, 5*time.Second, "spool to empty", func() bool { return p.SpoolDepth() == 0 })
	if p.Published() != n+1 || p.Dropped() != 0 {
		t.Errorf("published=%d dropped=%d, want %d and 0", p.Published(), p.Dropped(), n+1)
	}
}

// TestBrokerRestartWhilePublishing stops the broker while entries are in
// flight: the ones whose PUBACK was lost are sent again, none is lost and
// (duplicates dropped) the order holds.
func TestBrokerRestartWhilePublishing(t *testing.T) {
	b := startBroker(t, brokerOptions{persistence: true})
	const camera, n = "cam-flap", 150
	sub := newCollector(subscribe(t, b.url("tcp"), "inspectd/"+camera+"/#", subOptions{clientID: "scada-flap"}))
	p := newPublisher(t, testConfig(t, b.url("tcp"), camera))
	hm := testJPEG(t, 3)
	done := make(chan error, 1)
	go func() {
		for i := uint64(1); i <= n; i++ {
			if err := p.Publish(context.Background(), Event{Seq: i, Verdict: VerdictDefect}, hm); err != nil {
				done <- err
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		done <- nil
	}()
	eventually(t, 5*time.Second, "some events sent", func() bool { return p.Published() >= 20 })
	b.stop()
	time.Sleep(200 * time.Millisecond)
	b.start()
	if err := <-done; err != nil {
		t.Fatalf("Publish: %v", err)
	}
	checkSeqs(t, sub.events(t, n, 20*time.Second), seqRange(1, n))
	eventually(t, 5*time.Second, "spool to empty", func() bool { return p.SpoolDepth() == 0 })
	t.Logf("%d events in order across a broker restart; %d duplicates dropped by id", n, sub.duplicates)
}

func TestSpoolSurvivesRestart(t *testing.T) {
	b := startBroker(t, brokerOptions{persistence: true})
	const camera, n = "cam-restart", 10
	sub := newCollector(subscribe(t, b.url("tcp"), "inspectd/"+camera+"/#", subOptions{clientID: "scada-restart"}))
	cfg := testConfig(t, b.url("tcp"), camera)
	log, logs := testLogger(t)
	cfg.Logger = log

	first, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.stop()
	eventually(t, 5*time.Second, "publisher to notice the outage", func() bool { return !first.Connected() })
	for i := uint64(1); i <= n; i++ {
		if err := first.Publish(context.Background(), Event{Seq: i, Verdict: VerdictDefect}, testJPEG(t, int(i))); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	err = first.Close(ctx)
	cancel()
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d events still in spool", n)) {
		t.Errorf("Close with broker down: %v, want an error counting %d spooled events", err, n)
	}

	// Damage one entry on disk: it must be set aside, not block the rest.
	entries, _ := filepath.Glob(filepath.Join(cfg.SpoolDir, "*"+spoolExt))
	if len(entries) != n {
		t.Fatalf("%d spool files after Close, want %d", len(entries), n)
	}
	damaged := entries[4] // seq 5
	if err := os.WriteFile(damaged, []byte("INSPSPL1 torn write"), 0o600); err != nil {
		t.Fatal(err)
	}

	b.start()
	second := newPublisher(t, cfg)
	want := append(seqRange(1, 4), seqRange(6, n)...)
	checkSeqs(t, sub.events(t, len(want), 15*time.Second), want)
	eventually(t, 5*time.Second, "spool to empty", func() bool { return second.SpoolDepth() == 0 })
	if st := second.Stats(); st.Corrupt != 1 || st.Published != uint64(len(want)) {
		t.Errorf("stats corrupt=%d published=%d, want 1 and %d", st.Corrupt, st.Published, len(want))
	}
	if _, err := os.Stat(filepath.Join(cfg.SpoolDir, corruptSubdir, filepath.Base(damaged))); err != nil {
		t.Errorf("damaged entry not moved aside: %v", err)
	}
	if !strings.Contains(logs.String(), "corrupt spool entry moved aside") {
		t.Error("no error log about the corrupt entry")
	}
}

func TestSpoolBoundDropsOldest(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	const camera = "cam-bound"
	cfg := testConfig(t, fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)), camera) // nothing listens
	cfg.SpoolMaxEntries = 5
	log, logs := testLogger(t)
	cfg.Logger = log

	offline := newPublisher(t, cfg)
	if offline.Connected() {
		t.Fatal("connected to a port where nothing listens")
	}
	for i := uint64(1); i <= 8; i++ {
		if err := offline.Publish(context.Background(), Event{Seq: i, Verdict: VerdictDefect}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if d, dr := offline.SpoolDepth(), offline.Dropped(); d != 5 || dr != 3 {
		t.Errorf("depth=%d dropped=%d, want 5 and 3", d, dr)
	}
	if !strings.Contains(logs.String(), "spool full, dropping oldest") {
		t.Error("no warning logged when dropping")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_ = offline.Close(ctx)
	cancel()

	sub := newCollector(subscribe(t, b.url("tcp"), "inspectd/"+camera+"/#", subOptions{}))
	cfg.Brokers = []string{b.url("tcp")}
	online := newPublisher(t, cfg)
	checkSeqs(t, sub.events(t, 5, 10*time.Second), seqRange(4, 8))
	eventually(t, 5*time.Second, "spool to empty", func() bool { return online.SpoolDepth() == 0 })
}

func TestTLSAndPassword(t *testing.T) {
	mosquittoPath(t)
	passwd, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Skip("mosquitto_passwd not found; install mosquitto to run the TLS/password test")
	}
	dir := t.TempDir()
	pki := makePKI(t, dir)
	pwFile := filepath.Join(dir, "passwd")
	if out, err := exec.Command(passwd, "-b", "-c", pwFile, "cam-user", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	b := startBroker(t, brokerOptions{tls: &pki, passwordFile: pwFile})

	otherPKI := makePKI(t, t.TempDir())
	cases := []struct {
		name      string
		scheme    string
		password  string
		caFile    string
		wantErrIs error
		wantMsg   string
	}{
		{name: "ssl with client cert and password", scheme: "ssl", password: "s3cret", caFile: pki.ca},
		{name: "mqtts scheme", scheme: "mqtts", password: "s3cret", caFile: pki.ca},
		{name: "wrong password", scheme: "ssl", password: "wrong", caFile: pki.ca, wantErrIs: ErrRefused, wantMsg: "Password"},
		{name: "broker not signed by CAFile", scheme: "ssl", password: "s3cret", caFile: otherPKI.ca, wantErrIs: ErrTLS, wantMsg: "CAFile"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			camera := fmt.Sprintf("cam-tls%d", i)
			cfg := testConfig(t, b.url(tc.scheme), camera)
			cfg.Username, cfg.Password = "cam-user", tc.password
			cfg.CAFile, cfg.CertFile, cfg.KeyFile = tc.caFile, pki.clientCert, pki.clientKey
			if tc.wantErrIs != nil {
				p, err := New(context.Background(), cfg)
				if err == nil {
					p.Close(context.Background())
					t.Fatal("New succeeded, want an error")
				}
				if !errors.Is(err, tc.wantErrIs) || !strings.Contains(err.Error(), tc.wantMsg) {
					t.Fatalf("err = %v, want %v mentioning %q", err, tc.wantErrIs, tc.wantMsg)
				}
				t.Logf("error shown to the operator: %v", err)
				return
			}
			subTLS, err := cfg.tlsConfig()
			if err != nil {
				t.Fatal(err)
			}
			sub := newCollector(subscribe(t, b.url("ssl"), "inspectd/"+camera+"/#", subOptions{tls: subTLS, user: "cam-user", pass: "s3cret"}))
			p := newPublisher(t, cfg)
			hm := testJPEG(t, i)
			if err := p.Publish(context.Background(), Event{Seq: 1, Verdict: VerdictDefect}, hm); err != nil {
				t.Fatal(err)
			}
			evs := sub.events(t, 1, 5*time.Second)
			if evs[0].HeatmapBytes != len(hm) {
				t.Errorf("event over TLS: heatmap_bytes %d, want %d", evs[0].HeatmapBytes, len(hm))
			}
		})
	}
}
