package daemon_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/alerts"
	"github.com/inspectd/inspectd/daemon"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/sparkplug"
	"github.com/inspectd/inspectd/sparkplug/sparkplugtest"
	"github.com/inspectd/inspectd/synth"
)

// recorder keeps every message under some filters, in arrival order.
type recorder struct {
	mu   sync.Mutex
	msgs []sparkplugtest.Raw
}

func record(t *testing.T, url string, filters ...string) *recorder {
	t.Helper()
	r := &recorder{}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("rec-%d", time.Now().UnixNano())).SetProtocolVersion(4))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("recorder: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	subs := map[string]byte{}
	for _, f := range filters {
		subs[f] = 1
	}
	tok := c.SubscribeMultiple(subs, func(_ paho.Client, m paho.Message) {
		r.mu.Lock()
		r.msgs = append(r.msgs, sparkplugtest.Raw{Topic: m.Topic(), Payload: append([]byte(nil), m.Payload()...)})
		r.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("recorder subscribe: %v", tok.Error())
	}
	return r
}

func (r *recorder) all() []sparkplugtest.Raw {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sparkplugtest.Raw(nil), r.msgs...)
}

func (r *recorder) count(topic string) int {
	n := 0
	for _, m := range r.all() {
		if m.Topic == topic {
			n++
		}
	}
	return n
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

func mqttPublish(t *testing.T, url, topic string, payload []byte) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("cmd-%d", time.Now().UnixNano())).SetProtocolVersion(4))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("command client: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publishing %s: %v", topic, tok.Error())
	}
}

// TestSparkplugAndHomeAssistant runs the daemon with both dialects on beside
// the JSON topics: every inspection appears in both, as Eclipse Tahu's
// decoder reads it; a DCMD threshold (encoded by Tahu) changes the verdicts
// of later parts; a DCMD pause stops inspection (status "paused") until
// resumed; Home Assistant finds the camera and the latest defect heatmap.
func TestSparkplugAndHomeAssistant(t *testing.T) {
	f := newFixture(t, 7)
	tahu := sparkplugtest.Require(t)
	hot := filepath.Join(f.dir, "hot")
	os.MkdirAll(hot, 0o755)
	sub := subscribe(t, f.broker.URL(), "cam0")
	rec := record(t, f.broker.URL(), "spBv1.0/#", "homeassistant/#", "inspectd/cam0/heatmap/latest", "inspectd/cam0/status")
	t.Setenv("INSPECTD_SPARKPLUG", "true")
	t.Setenv("INSPECTD_SPARKPLUG_GROUP", "plant1")
	t.Setenv("INSPECTD_SPARKPLUG_NODE", "edge1")
	t.Setenv("INSPECTD_HOMEASSISTANT", "true")
	t.Setenv("INSPECTD_HEATMAP_ALL", "false")
	t.Setenv("INSPECTD_THRESHOLD", "1e-6") // every part a defect, until the DCMD
	cfg := f.config(t, "dir:"+hot)
	d, stop := startDaemon(t, cfg)
	tp := sparkplug.TopicsFor("plant1", "edge1", "cam0", "")
	waitUntil(t, 20*time.Second, "DBIRTH", func() bool { return rec.count(tp.DBIRTH) == 1 })

	first := dropParts(t, hot, 0, 4)
	events := sub.waitEvents(t, len(first), 60*time.Second)
	for _, ev := range events {
		if ev.Verdict != alerts.VerdictDefect {
			t.Fatalf("event %d: %s at threshold %v", ev.Seq, ev.Verdict, ev.Threshold)
		}
		// Where: inside the part image, the peak inside its box.
		l := ev.DefectLocation
		if l == nil || l.AreaPx <= 0 || l.Box.W <= 0 || l.Box.H <= 0 || l.Box.X < 0 || l.Box.Y < 0 ||
			l.Box.X+l.Box.W > partSize || l.Box.Y+l.Box.H > partSize ||
			l.PeakX < l.Box.X || l.PeakX > l.Box.X+l.Box.W || l.PeakY < l.Box.Y || l.PeakY > l.Box.Y+l.Box.H {
			t.Errorf("event %d: defect location %+v", ev.Seq, l)
		}
	}
	waitUntil(t, 10*time.Second, "a DDATA per inspection", func() bool { return rec.count(tp.DDATA) >= len(first) })

	// Threshold by DCMD: far above every score, so no more defects.
	mqttPublish(t, f.broker.URL(), tp.DCMD, tahu.Encode(t, `{"timestamp":1,"metrics":[{"name":"Config/Threshold","type":"Double","value":1e6}]}`))
	waitUntil(t, 10*time.Second, "threshold applied", func() bool { return d.Threshold() == 1e6 })
	// The status and metrics say where the threshold in force comes from.
	if st := d.Status(); st.Threshold != 1e6 || st.ThresholdSource != daemon.SourceCommand {
		t.Errorf("status threshold %v from %q, want 1e6 from %q", st.Threshold, st.ThresholdSource, daemon.SourceCommand)
	}
	// Pause by DCMD (alias only): parts wait in the hot folder.
	mqttPublish(t, f.broker.URL(), tp.DCMD, tahu.Encode(t, `{"timestamp":2,"metrics":[{"alias":131,"type":"Boolean","value":false}]}`))
	waitUntil(t, 10*time.Second, "paused", func() bool { return d.Status().State == daemon.StatePaused })
	second := dropParts(t, hot, 4, 2)
	statusBefore := sub.statusCount()
	waitUntil(t, 10*time.Second, "two status messages while paused", func() bool { return sub.statusCount() >= statusBefore+2 })
	if n := len(sub.uniqueEvents()); n != len(first) {
		t.Fatalf("%d events while paused, want %d", n, len(first))
	}
	for _, n := range second {
		if _, err := os.Stat(filepath.Join(hot, n)); err != nil {
			t.Fatalf("part %s taken while paused: %v", n, err)
		}
	}
	mqttPublish(t, f.broker.URL(), tp.DCMD, tahu.Encode(t, `{"timestamp":3,"metrics":[{"name":"Config/Inspection Enabled","type":"Boolean","value":true}]}`))
	events = sub.waitEvents(t, len(first)+len(second), 60*time.Second)
	for _, ev := range events[len(first):] {
		if ev.Threshold != 1e6 || ev.Verdict != alerts.VerdictOK || ev.DefectLocation != nil {
			t.Errorf("event after the threshold command: threshold %v verdict %s", ev.Threshold, ev.Verdict)
		}
	}
	waitUntil(t, 10*time.Second, "every DDATA", func() bool { return rec.count(tp.DDATA) >= len(first)+len(second)+2 })
	// Commands are counted; one refused (not protobuf) joins the three applied.
	mqttPublish(t, f.broker.URL(), tp.DCMD, []byte("not protobuf"))
	waitUntil(t, 10*time.Second, "command counters", func() bool {
		m := metricsText(t, d.HTTPAddr())
		return strings.Contains(m, `inspectd_sparkplug_commands_total{result="applied"} 3`) &&
			strings.Contains(m, `inspectd_sparkplug_commands_total{result="refused"} 1`)
	})
	stop()
	waitUntil(t, 10*time.Second, "NDEATH", func() bool { return rec.count(tp.NDEATH) == 1 })

	// Every event, as Tahu decodes its DDATA.
	byEvent := map[string]sparkplugtest.Msg{}
	var states []string
	msgs := tahu.Decode(t, rec.all())
	for _, m := range msgs {
		if m.Kind() != "DDATA" {
			continue
		}
		for _, x := range m.Payload.Metrics {
			if x.Alias == nil {
				t.Fatalf("DDATA metric without alias: %+v", x)
			}
			switch uint64(*x.Alias) {
			case sparkplug.MetricEventID.Alias:
				byEvent[x.Str()] = m
			case sparkplug.MetricState.Alias:
				states = append(states, x.Str())
			}
		}
	}
	for _, ev := range events {
		m, ok := byEvent[ev.ID]
		if !ok {
			t.Errorf("no DDATA for event %s", ev.ID)
			continue
		}
		for _, c := range []struct {
			metric sparkplug.Metric
			want   string
		}{
			{sparkplug.MetricVerdict, string(ev.Verdict)}, {sparkplug.MetricPartID, ev.PartID}, {sparkplug.MetricSeq, fmt.Sprint(ev.Seq)},
		} {
			if got := m.Metric(t, "", c.metric.Alias).Str(); got != c.want {
				t.Errorf("event %d %s: Sparkplug says %s, JSON %s", ev.Seq, c.metric.Name, got, c.want)
			}
		}
		if ev.DefectLocation != nil && m.Metric(t, "", sparkplug.MetricDefectX.Alias).Float(t) != ev.DefectLocation.PeakX {
			t.Errorf("event %d: Sparkplug defect X %s, JSON %v", ev.Seq, m.Metric(t, "", sparkplug.MetricDefectX.Alias).Value, ev.DefectLocation.PeakX)
		}
		if s, thr := m.Metric(t, "", sparkplug.MetricScore.Alias).Float(t), m.Metric(t, "", sparkplug.MetricThreshold.Alias).Float(t); s != ev.Score || thr != ev.Threshold {
			t.Errorf("event %d: Sparkplug score %v threshold %v, JSON %v %v", ev.Seq, s, thr, ev.Score, ev.Threshold)
		}
	}
	// (The first "running" may come in the DBIRTH instead of a DDATA.)
	if n := len(states); n < 3 || fmt.Sprint(states[n-3:]) != fmt.Sprint([]string{"paused", "running", "stopping"}) {
		t.Errorf("state changes %v, want ... paused running stopping", states)
	}

	// Home Assistant: seven configs; the image is the last defect's heatmap.
	configs, latest := 0, []byte(nil)
	for _, m := range rec.all() {
		switch {
		case len(m.Topic) > 14 && m.Topic[:14] == "homeassistant/":
			configs++
			var c map[string]any
			if err := json.Unmarshal(m.Payload, &c); err != nil || c["device"] == nil {
				t.Errorf("%s: %v %s", m.Topic, err, m.Payload)
			}
		case m.Topic == "inspectd/cam0/heatmap/latest":
			latest = m.Payload
		}
	}
	if configs != 9 {
		t.Errorf("%d discovery configs, want 9", configs)
	}
	var lastDefect *alerts.Event
	for i := range events {
		if events[i].Verdict == alerts.VerdictDefect {
			lastDefect = &events[i]
		}
	}
	if lastDefect == nil {
		t.Fatal("no defect among the parts")
	}
	sum := sha256.Sum256(latest)
	if hex.EncodeToString(sum[:]) != lastDefect.HeatmapSHA256 {
		t.Errorf("heatmap/latest (%d bytes) is not the last defect's heatmap (%d bytes)", len(latest), lastDefect.HeatmapBytes)
	}
}

func (s *subscriber) statusCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.status)
}

// TestEventSchemaV2: v2's fields beside v1's; a new boot id per start; the
// trigger's arrival time with MQTT triggers.
func TestEventSchemaV2(t *testing.T) {
	f := newFixture(t, 8)
	hot := filepath.Join(f.dir, "hot")
	sub := subscribe(t, f.broker.URL(), "cam0")
	cfg := f.config(t, "dir:"+hot)
	man, err := model.Load(f.model)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, stop := startDaemon(t, cfg)
	dropParts(t, hot, 0, 2)
	sub.waitEvents(t, 2, 60*time.Second)
	stop()
	startDaemon(t, cfg)
	dropParts(t, hot, 2, 1)
	events := sub.waitEvents(t, 3, 60*time.Second)
	for i, ev := range events {
		if ev.Schema != "inspectd.event/v2" || ev.ID == "" || ev.PartID == "" || ev.ModelID != man.Manifest.ID || ev.Time.IsZero() {
			t.Errorf("event %d v1 fields: %+v", i, ev)
		}
		if ev.CapturedAt.Before(start) || ev.CapturedAt.After(ev.Time) {
			t.Errorf("event %d captured_at %v, want between the test's start %v and the event's time %v", i, ev.CapturedAt, start, ev.Time)
		}
		if !ev.TriggeredAt.IsZero() {
			t.Errorf("event %d: triggered_at %v from a hot folder", i, ev.TriggeredAt)
		}
		if want := ev.Score / ev.Threshold; ev.ScoreRatio != want {
			t.Errorf("event %d score_ratio %v, want %v", i, ev.ScoreRatio, want)
		}
		if ev.SoftwareVersion != "test" || !ev.ModelCreated.Equal(man.Manifest.Training.Created) || ev.BootID == "" {
			t.Errorf("event %d: version %q model_created %v (manifest %v) boot %q", i, ev.SoftwareVersion, ev.ModelCreated, man.Manifest.Training.Created, ev.BootID)
		}
	}
	if events[0].BootID != events[1].BootID || events[1].BootID == events[2].BootID {
		t.Errorf("boot ids %s %s %s: want one per daemon start", events[0].BootID, events[1].BootID, events[2].BootID)
	}
	if events[2].Seq != 1 {
		t.Errorf("seq after restart %d, want 1", events[2].Seq)
	}
}

// With MQTT triggers the event says when the trigger arrived.
func TestEventTriggeredAt(t *testing.T) {
	f := newFixture(t, 9)
	video := filepath.Join(f.dir, "line.avi")
	if err := synth.WriteVideo(video, 10, 10, partSize, 3, 1); err != nil {
		t.Fatal(err)
	}
	sub := subscribe(t, f.broker.URL(), "cam0")
	t.Setenv("INSPECTD_TRIGGER", "mqtt")
	t.Setenv("INSPECTD_SOURCE_LOOP", "true")
	cfg := f.config(t, video)
	startDaemon(t, cfg)
	// The daemon publishes "online" once it listens for triggers.
	waitUntil(t, 30*time.Second, "online", func() bool { return sub.lastAvail() == "online" })
	sent := time.Now()
	sub.client.Publish("inspectd/cam0/trigger", 1, false, "T-1").Wait()
	ev := sub.waitEvents(t, 1, 30*time.Second)[0]
	if ev.PartID != "T-1" || ev.TriggeredAt.Before(sent.Add(-time.Second)) || ev.TriggeredAt.After(ev.Time) {
		t.Errorf("part %q triggered_at %v (sent %v, event %v)", ev.PartID, ev.TriggeredAt, sent, ev.Time)
	}
}

func metricsText(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
