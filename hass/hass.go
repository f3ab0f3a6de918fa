// Package hass announces a camera to Home Assistant by MQTT discovery and
// keeps a retained copy of the latest defect heatmap, over its own MQTT
// connection beside the event publisher (package alerts).
//
// Discovery configs are retained, QoS 1, under
// <discovery prefix>/<component>/<node id>/<object id>/config, published on
// every connection:
//
//	binary_sensor/<node>/defect     on while the last part was a defect (event topic); the event's fields as attributes
//	binary_sensor/<node>/off_shape  on while the last part's shape lay outside the good parts' (event topic)
//	binary_sensor/<node>/drift      on while the scores drift (status topic), diagnostic
//	binary_sensor/<node>/rejects_high  on while the line rejects more than its threshold and defect rate explain (status topic)
//	sensor/<node>/score             the last part's score (event topic)
//	sensor/<node>/score_ratio       score / threshold (event topic)
//	sensor/<node>/inspection_rate   inspections per second (status topic)
//	sensor/<node>/state             the daemon's state (status topic), diagnostic
//	image/<node>/heatmap            the latest defect heatmap (JPEG on <prefix>/<camera>/heatmap/latest)
//
// With the daemon's MQTT commands on (Config.Commands), controls on their
// .../set and .../state topics:
//
//	number/<node>/threshold         the decision threshold (threshold/set, threshold/state)
//	switch/<node>/inspection        inspection on or off (inspection/set, inspection/state)
//	button/<node>/reload_model      reload the model file (model/set RELOAD)
//
// Every entity's availability is the daemon's availability topic (online /
// offline, the event publisher's last will), and all belong to one device
// (identifiers inspectd_<camera>, model, software version). The sensors read
// the JSON the daemon publishes anyway: discovery adds no state topics.
package hass

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/alerts"
	"github.com/inspectd/inspectd/internal/mqttx"
)

const ackTimeout = 10 * time.Second

// Config of the Home Assistant side.
type Config struct {
	Conn     mqttx.Conn
	ClientID string // default inspectd-<camera>-hass
	// Discovery turns the discovery configs on; HeatmapLatest (a topic, empty
	// for none) keeps the latest defect heatmap there, retained.
	Discovery     bool
	Prefix        string // discovery prefix, default homeassistant
	NodeID        string // default inspectd_<camera>
	HeatmapLatest string
	Topics        alerts.Topics // the daemon's JSON topics
	// Commands announces the controls of the daemon's MQTT commands
	// (INSPECTD_COMMANDS).
	Commands bool
	Camera   string
	Version  string
	Logger   *slog.Logger
}

// Publisher implements the daemon's hook.
type Publisher struct {
	cfg    Config
	log    *slog.Logger
	sess   *mqttx.Session
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	heatmap []byte // latest defect heatmap, sent again after a reconnect
	client  mqtt.Client
	poke    chan struct{} // a heatmap or a connection: heatmapLoop sends the latest
}

// Start connects in the background and publishes the discovery configs on
// every connection.
func Start(cfg Config) (*Publisher, error) {
	if cfg.Camera == "" {
		return nil, fmt.Errorf("hass: no camera")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "homeassistant"
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "inspectd_" + cfg.Camera
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "inspectd-" + cfg.Camera + "-hass"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Discovery && cfg.HeatmapLatest == "" {
		return nil, fmt.Errorf("hass: discovery needs the latest heatmap topic for its image entity")
	}
	p := &Publisher{cfg: cfg, log: cfg.Logger.With("dialect", "homeassistant"), done: make(chan struct{}), poke: make(chan struct{}, 1)}
	p.sess = &mqttx.Session{Conn: cfg.Conn, ClientID: cfg.ClientID, Log: p.log, OnConnect: p.onConnect}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.sess.Run(ctx) }()
	go func() { defer wg.Done(); p.heatmapLoop(ctx) }()
	go func() { wg.Wait(); close(p.done) }()
	return p, nil
}

// Discovery returns the discovery messages: topic to JSON.
func (p *Publisher) Discovery() map[string][]byte { return Discovery(p.cfg) }

// Discovery builds the discovery messages of cfg (topic to JSON).
func Discovery(cfg Config) map[string][]byte {
	dev := map[string]any{
		"identifiers":  []string{cfg.NodeID},
		"name":         "inspectd " + cfg.Camera,
		"manufacturer": "inspectd",
		"model":        "DifferNet visual inspection",
		"sw_version":   cfg.Version,
	}
	avail := []map[string]string{{"topic": cfg.Topics.Availability, "payload_available": "online", "payload_not_available": "offline"}}
	entity := func(object, name string, extra map[string]any) map[string]any {
		m := map[string]any{
			"name":         name,
			"unique_id":    cfg.NodeID + "_" + object,
			"object_id":    cfg.NodeID + "_" + object,
			"availability": avail,
			"device":       dev,
			"origin":       map[string]string{"name": "inspectd", "sw_version": cfg.Version},
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	out := map[string]any{
		"binary_sensor/defect": entity("defect", "Defect", map[string]any{
			"state_topic":           cfg.Topics.Event,
			"value_template":        "{{ 'ON' if value_json.verdict == 'defect' else 'OFF' }}",
			"payload_on":            "ON",
			"payload_off":           "OFF",
			"device_class":          "problem",
			"json_attributes_topic": cfg.Topics.Event,
		}),
		"binary_sensor/off_shape": entity("off_shape", "Part off shape", map[string]any{
			"state_topic": cfg.Topics.Event,
			// off_shape is present only when the part was off shape.
			"value_template":  "{{ 'ON' if value_json.off_shape is defined else 'OFF' }}",
			"payload_on":      "ON",
			"payload_off":     "OFF",
			"device_class":    "problem",
			"entity_category": "diagnostic",
		}),
		"binary_sensor/drift": entity("drift", "Score drift", map[string]any{
			"state_topic":     cfg.Topics.Status,
			"value_template":  "{{ 'ON' if value_json.drift else 'OFF' }}",
			"payload_on":      "ON",
			"payload_off":     "OFF",
			"device_class":    "problem",
			"entity_category": "diagnostic",
		}),
		"binary_sensor/rejects_high": entity("rejects_high", "Rejects high", map[string]any{
			"state_topic":    cfg.Topics.Status,
			"value_template": "{{ 'ON' if value_json.rejects_high else 'OFF' }}",
			"payload_on":     "ON",
			"payload_off":    "OFF",
			"device_class":   "problem",
		}),
		"sensor/score": entity("score", "Score", map[string]any{
			"state_topic":                 cfg.Topics.Event,
			"value_template":              "{{ value_json.score }}",
			"state_class":                 "measurement",
			"suggested_display_precision": 3,
		}),
		"sensor/score_ratio": entity("score_ratio", "Score / threshold", map[string]any{
			"state_topic":                 cfg.Topics.Event,
			"value_template":              "{{ value_json.score_ratio }}", // event schema v2
			"state_class":                 "measurement",
			"suggested_display_precision": 3,
		}),
		"sensor/inspection_rate": entity("inspection_rate", "Inspections per second", map[string]any{
			"state_topic":                 cfg.Topics.Status,
			"value_template":              "{{ value_json.inspections_per_s }}",
			"unit_of_measurement":         "1/s",
			"state_class":                 "measurement",
			"suggested_display_precision": 2,
		}),
		"sensor/state": entity("state", "State", map[string]any{
			"state_topic":     cfg.Topics.Status,
			"value_template":  "{{ value_json.state }}",
			"entity_category": "diagnostic",
		}),
		"image/heatmap": entity("heatmap", "Latest defect heatmap", map[string]any{
			"image_topic":  cfg.HeatmapLatest,
			"content_type": "image/jpeg",
		}),
	}
	if cfg.Commands {
		t := cfg.Topics
		out["number/threshold"] = entity("threshold", "Threshold", map[string]any{
			"command_topic": t.CommandTopic(alerts.CommandThreshold),
			"state_topic":   t.StateTopic(alerts.CommandThreshold),
			// The daemon's range (0, 1e9]; a box, as thresholds span decades.
			"min": 0.001, "max": 1e9, "step": 0.001, "mode": "box",
			"entity_category": "config",
		})
		out["switch/inspection"] = entity("inspection", "Inspection", map[string]any{
			"command_topic": t.CommandTopic(alerts.CommandInspection),
			"state_topic":   t.StateTopic(alerts.CommandInspection),
			"payload_on":    alerts.On, "payload_off": alerts.Off,
			"state_on": alerts.On, "state_off": alerts.Off,
			"entity_category": "config",
		})
		out["button/reload_model"] = entity("reload_model", "Reload model", map[string]any{
			"command_topic":   t.CommandTopic(alerts.CommandModel),
			"payload_press":   alerts.Reload,
			"entity_category": "config",
		})
	}
	msgs := make(map[string][]byte, len(out))
	for key, v := range out {
		component, object, _ := cut(key)
		b, _ := json.Marshal(v) // maps of strings and numbers always marshal
		msgs[cfg.Prefix+"/"+component+"/"+cfg.NodeID+"/"+object+"/config"] = b
	}
	return msgs
}

func cut(s string) (string, string, bool) {
	for i := range len(s) {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func (p *Publisher) onConnect(ctx context.Context, c mqtt.Client) error {
	if p.cfg.Discovery {
		for topic, b := range Discovery(p.cfg) {
			if err := mqttx.Wait(ctx, c.Publish(topic, 1, true, b), ackTimeout); err != nil {
				return fmt.Errorf("hass: publishing discovery %s: %w", topic, err)
			}
		}
		p.log.Info("home assistant discovery published", "prefix", p.cfg.Prefix, "node", p.cfg.NodeID)
	}
	// The latest heatmap too (the broker may have lost it).
	p.mu.Lock()
	p.client = c
	p.mu.Unlock()
	p.wake()
	return nil
}

func (p *Publisher) wake() {
	select {
	case p.poke <- struct{}{}:
	default:
	}
}

// Inspected keeps a defect's heatmap as the latest, retained. It never
// waits for the broker (heatmapLoop sends): the inspection loop must not
// stall on it, and while the broker is slow only the newest is kept.
func (p *Publisher) Inspected(ev alerts.Event, heatmapJPEG []byte) {
	if p.cfg.HeatmapLatest == "" || ev.Verdict != alerts.VerdictDefect || len(heatmapJPEG) == 0 {
		return
	}
	p.mu.Lock()
	p.heatmap = heatmapJPEG
	p.mu.Unlock()
	p.wake()
}

// heatmapLoop publishes the latest heatmap whenever it or the connection
// changed, one at a time, so an older one never lands after a newer.
func (p *Publisher) heatmapLoop(ctx context.Context) {
	var sent []byte
	var sentOn mqtt.Client
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.poke:
		}
		p.mu.Lock()
		jpg, c := p.heatmap, p.client
		p.mu.Unlock()
		if jpg == nil || c == nil || !c.IsConnectionOpen() || (c == sentOn && sameBytes(jpg, sent)) {
			continue
		}
		if err := mqttx.Wait(ctx, c.Publish(p.cfg.HeatmapLatest, 1, true, jpg), ackTimeout); err != nil {
			p.log.Warn("home assistant: publishing the latest heatmap", "topic", p.cfg.HeatmapLatest, "err", err)
			continue
		}
		sent, sentOn = jpg, c
	}
}

// sameBytes reports whether a and b are the same slice (not just equal).
func sameBytes(a, b []byte) bool { return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) }

// StatusChanged does nothing: the entities read the status topic itself.
func (p *Publisher) StatusChanged(alerts.Status) {}

// Close disconnects (the retained configs stay, as Home Assistant expects).
func (p *Publisher) Close(ctx context.Context) error {
	p.cancel()
	select {
	case <-p.done:
	case <-ctx.Done():
		return fmt.Errorf("hass: closing: %w", ctx.Err())
	}
	if c := p.sess.Client(); c != nil {
		c.Disconnect(250)
	}
	return nil
}
