package hass

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/alerts"
	"github.com/inspectd/inspectd/internal/mqttx"
	"github.com/inspectd/inspectd/internal/testenv"
)

type msg struct {
	topic    string
	payload  []byte
	retained bool
}

// subscribe connects a fresh client (so retained messages arrive flagged)
// and records what arrives under filter.
func subscribe(t *testing.T, url, filter string) func() []msg {
	t.Helper()
	var mu sync.Mutex
	var got []msg
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("ha-%d", time.Now().UnixNano())).SetProtocolVersion(4))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		got = append(got, msg{m.Topic(), append([]byte(nil), m.Payload()...), m.Retained()})
		mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return func() []msg { mu.Lock(); defer mu.Unlock(); return append([]msg(nil), got...) }
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

func TestDiscoveryOnARealBroker(t *testing.T) {
	b := testenv.StartMosquitto(t)
	topics := alerts.TopicsFor("plant1/line3", "cam0")
	latest := topics.HeatmapBase + "/latest"
	p, err := Start(Config{
		Conn:      mqttx.Conn{Brokers: []string{b.URL()}, RetryInterval: 50 * time.Millisecond, MaxRetryInterval: 200 * time.Millisecond},
		Discovery: true, HeatmapLatest: latest, Topics: topics, Camera: "cam0", Version: "1.2.3",
		Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctx, c := context.WithTimeout(context.Background(), 5*time.Second); defer c(); p.Close(ctx) })

	want := []struct {
		topic  string
		fields map[string]any // JSON values, compared as printed
	}{
		{"homeassistant/binary_sensor/inspectd_cam0/defect/config", map[string]any{
			"state_topic": topics.Event, "json_attributes_topic": topics.Event, "device_class": "problem",
			"payload_on": "ON", "payload_off": "OFF", "unique_id": "inspectd_cam0_defect",
			"value_template": "{{ 'ON' if value_json.verdict == 'defect' else 'OFF' }}"}},
		{"homeassistant/binary_sensor/inspectd_cam0/off_shape/config", map[string]any{
			"state_topic": topics.Event, "device_class": "problem", "entity_category": "diagnostic", "payload_on": "ON", "payload_off": "OFF",
			"value_template": "{{ 'ON' if value_json.off_shape is defined else 'OFF' }}"}},
		{"homeassistant/binary_sensor/inspectd_cam0/drift/config", map[string]any{
			"state_topic": topics.Status, "device_class": "problem", "entity_category": "diagnostic",
			"value_template": "{{ 'ON' if value_json.drift else 'OFF' }}"}},
		{"homeassistant/binary_sensor/inspectd_cam0/rejects_high/config", map[string]any{
			"state_topic": topics.Status, "device_class": "problem", "payload_on": "ON", "payload_off": "OFF",
			"value_template": "{{ 'ON' if value_json.rejects_high else 'OFF' }}"}},
		{"homeassistant/sensor/inspectd_cam0/score/config", map[string]any{
			"state_topic": topics.Event, "value_template": "{{ value_json.score }}", "state_class": "measurement"}},
		{"homeassistant/sensor/inspectd_cam0/score_ratio/config", map[string]any{"state_topic": topics.Event, "value_template": "{{ value_json.score_ratio }}"}},
		{"homeassistant/sensor/inspectd_cam0/inspection_rate/config", map[string]any{
			"state_topic": topics.Status, "value_template": "{{ value_json.inspections_per_s }}", "unit_of_measurement": "1/s"}},
		{"homeassistant/sensor/inspectd_cam0/state/config", map[string]any{"state_topic": topics.Status, "entity_category": "diagnostic"}},
		{"homeassistant/image/inspectd_cam0/heatmap/config", map[string]any{"image_topic": latest, "content_type": "image/jpeg"}},
	}
	check := func(t *testing.T, got []msg) {
		t.Helper()
		byTopic := map[string]msg{}
		for _, m := range got {
			byTopic[m.topic] = m
		}
		if len(byTopic) != len(want) {
			t.Errorf("%d discovery topics, want %d", len(byTopic), len(want))
		}
		for _, w := range want {
			m, ok := byTopic[w.topic]
			if !ok {
				t.Errorf("no %s", w.topic)
				continue
			}
			if !m.retained {
				t.Errorf("%s not retained", w.topic)
			}
			var cfg map[string]any
			if err := json.Unmarshal(m.payload, &cfg); err != nil {
				t.Fatalf("%s: %v", w.topic, err)
			}
			for k, v := range w.fields {
				if fmt.Sprint(cfg[k]) != fmt.Sprint(v) {
					t.Errorf("%s: %s = %v, want %v", w.topic, k, cfg[k], v)
				}
			}
			av := fmt.Sprint(cfg["availability"])
			if av != fmt.Sprint([]any{map[string]any{"topic": topics.Availability, "payload_available": "online", "payload_not_available": "offline"}}) {
				t.Errorf("%s: availability %s", w.topic, av)
			}
			dev, _ := cfg["device"].(map[string]any)
			if dev["model"] == "" || dev["sw_version"] != "1.2.3" || fmt.Sprint(dev["identifiers"]) != "[inspectd_cam0]" || dev["manufacturer"] != "inspectd" {
				t.Errorf("%s: device %v", w.topic, dev)
			}
			if cfg["name"] == "" || cfg["unique_id"] != cfg["object_id"] {
				t.Errorf("%s: name %v unique_id %v object_id %v", w.topic, cfg["name"], cfg["unique_id"], cfg["object_id"])
			}
		}
	}
	// A live subscriber sees them arrive; one that comes later gets them
	// retained.
	live := subscribe(t, b.URL(), "homeassistant/#")
	eventually(t, 10*time.Second, "6 discovery configs", func() bool { return len(live()) >= len(want) })
	got := subscribe(t, b.URL(), "homeassistant/#")
	eventually(t, 10*time.Second, "6 retained discovery configs", func() bool { return len(got()) >= len(want) })
	check(t, got())

	// The latest defect heatmap, retained; good parts leave it alone.
	p.Inspected(alerts.Event{Verdict: alerts.VerdictDefect}, []byte("jpeg-1"))
	p.Inspected(alerts.Event{Verdict: alerts.VerdictDefect}, []byte("jpeg-2"))
	p.Inspected(alerts.Event{Verdict: alerts.VerdictOK}, []byte("jpeg-good"))
	lastHeatmap := func() string {
		h := subscribe(t, b.URL(), latest)
		eventually(t, 10*time.Second, "retained heatmap", func() bool { return len(h()) > 0 })
		return string(h()[0].payload)
	}
	eventually(t, 10*time.Second, "jpeg-2 retained", func() bool { return lastHeatmap() == "jpeg-2" })

	// A broker that lost its retained messages (no persistence) gets them
	// again after the reconnect.
	b.Stop()
	b.Start()
	live = subscribe(t, b.URL(), "homeassistant/#")
	eventually(t, 15*time.Second, "discovery after broker restart", func() bool { return len(live()) >= len(want) })
	got = subscribe(t, b.URL(), "homeassistant/#")
	eventually(t, 10*time.Second, "retained again", func() bool { return len(got()) >= len(want) })
	check(t, got())
	if h := lastHeatmap(); h != "jpeg-2" {
		t.Errorf("heatmap after broker restart %q", h)
	}
	for _, m := range got() {
		if strings.Contains(string(m.payload), "jpeg-") {
			t.Errorf("heatmap bytes in discovery %s", m.topic)
		}
	}
}

// TestHeatmapLatestAlone: INSPECTD_HEATMAP_LATEST without Home Assistant
// retains the heatmap and nothing else.
func TestHeatmapLatestAlone(t *testing.T) {
	b := testenv.StartMosquitto(t)
	topics := alerts.TopicsFor("inspectd", "cam1")
	latest := topics.HeatmapBase + "/latest"
	p, err := Start(Config{Conn: mqttx.Conn{Brokers: []string{b.URL()}}, HeatmapLatest: latest, Topics: topics, Camera: "cam1",
		Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctx, c := context.WithTimeout(context.Background(), 5*time.Second); defer c(); p.Close(ctx) })
	p.Inspected(alerts.Event{Verdict: alerts.VerdictDefect}, []byte("jpeg-a"))
	live := subscribe(t, b.URL(), latest)
	eventually(t, 10*time.Second, "heatmap", func() bool { return len(live()) > 0 })
	all := subscribe(t, b.URL(), "#") // a fresh subscriber: exactly the retained messages
	eventually(t, 10*time.Second, "retained", func() bool { return len(all()) > 0 })
	// A second retained message would arrive in the same burst as the first:
	// wait for a round trip through the broker before counting.
	publishMarker(t, b.URL(), "marker")
	eventually(t, 10*time.Second, "marker", func() bool { return len(all()) >= 2 })
	got := all()
	if len(got) != 2 || got[0].topic != latest || string(got[0].payload) != "jpeg-a" || got[1].topic != "marker" {
		t.Errorf("retained: %v", got)
	}
}

func publishMarker(t *testing.T, url, topic string) {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("m-%d", time.Now().UnixNano())).SetProtocolVersion(4))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish(topic, 1, false, "x"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
}

// With the daemon's commands on, Home Assistant gets controls on exactly
// the daemon's .../set and .../state topics; without, none.
func TestDiscoveryControls(t *testing.T) {
	topics := alerts.TopicsFor("plant1/line3", "cam0")
	cfg := Config{Discovery: true, HeatmapLatest: topics.HeatmapBase + "/latest", Topics: topics, Camera: "cam0", NodeID: "inspectd_cam0", Prefix: "homeassistant"}
	controls := []struct {
		topic  string
		fields map[string]any
	}{
		{"homeassistant/number/inspectd_cam0/threshold/config", map[string]any{
			"command_topic": "plant1/line3/cam0/threshold/set", "state_topic": "plant1/line3/cam0/threshold/state",
			"min": 0.001, "max": 1e9, "mode": "box"}},
		{"homeassistant/switch/inspectd_cam0/inspection/config", map[string]any{
			"command_topic": "plant1/line3/cam0/inspection/set", "state_topic": "plant1/line3/cam0/inspection/state",
			"payload_on": "ON", "payload_off": "OFF", "state_on": "ON", "state_off": "OFF"}},
		{"homeassistant/button/inspectd_cam0/reload_model/config", map[string]any{
			"command_topic": "plant1/line3/cam0/model/set", "payload_press": "RELOAD"}},
	}
	for _, on := range []bool{false, true} {
		cfg.Commands = on
		msgs := Discovery(cfg)
		for _, c := range controls {
			raw, ok := msgs[c.topic]
			if ok != on {
				t.Errorf("commands %v: %s announced %v", on, c.topic, ok)
				continue
			}
			if !on {
				continue
			}
			var got map[string]any
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			for k, v := range c.fields {
				if fmt.Sprint(got[k]) != fmt.Sprint(v) {
					t.Errorf("%s: %s = %v; want %v", c.topic, k, got[k], v)
				}
			}
		}
	}
}
