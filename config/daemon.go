package config

import (
	"cmp"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/inspectd/inspectd/internal/redact"
)

// Daemon holds every setting of `inspectd run`, one instance per camera.
type Daemon struct {
	Runtime
	Camera         string        `envconfig:"CAMERA" default:"cam0" desc:"camera id: MQTT sub-tree and client id"`
	Source         string        `envconfig:"SOURCE" desc:"capture source: /dev/video0, a video file, rtsp://... or http://... stream, gst:<pipeline>, gige:<camera>?<options> (GigE Vision through Aravis; trigger=software fires it per MQTT trigger), or dir:/path (hot folder) (required)"`
	SourceLoop     bool          `envconfig:"SOURCE_LOOP" default:"false" desc:"loop a video file"`
	SourcePace     bool          `envconfig:"SOURCE_PACE" default:"true" desc:"read video files at their frame rate, like a camera"`
	Model          string        `envconfig:"MODEL" default:"/var/lib/inspectd/model.zip" desc:"calibrated model; SIGHUP reloads it"`
	Trigger        string        `envconfig:"TRIGGER" default:"continuous" desc:"continuous (at most MAX_RATE per second) or mqtt (inspect on each message on the trigger topic); hot folders inspect every file"`
	TriggerDelay   time.Duration `envconfig:"TRIGGER_DELAY" default:"0s" desc:"with mqtt triggers: inspect the first frame captured this long after the trigger, so the part has settled (0..10s)"`
	MaxRate        float64       `envconfig:"MAX_RATE" default:"5" desc:"most inspections per second in continuous mode"`
	Transforms     int           `envconfig:"TRANSFORMS" default:"0" desc:"T per inspection (0: the model's)"`
	Threshold      float64       `envconfig:"THRESHOLD" default:"0" desc:"decision threshold override (0: the model's); fixes the threshold: no refinement"`
	FRR            float64       `envconfig:"FRR" default:"0" desc:"target false-reject rate override, e.g. 0.02: the threshold is recomputed from the model's out-of-sample good scores with the model's tail method (0: the model's threshold and rate); refinement aims at it"`
	Refine         string        `envconfig:"REFINE" default:"auto" desc:"refine the threshold on the line from the stream of scores: on, off, or auto (the default: on where the line can only raise the threshold, a patch model's leave-one-out threshold with the default REFINE_MIN_FACTOR; off for the pooled methods' fold thresholds; see README)"`
	RefineAfter    int           `envconfig:"REFINE_AFTER" default:"100" desc:"inspections before the first refinement (then every quarter of it)"`
	RefineWindow   int           `envconfig:"REFINE_WINDOW" default:"1000" desc:"recent scores refinement and drift look at"`
	RefineMin      float64       `envconfig:"REFINE_MIN_FACTOR" desc:"refinement never goes below this times the starting (calibrated or FRR) threshold (0: by the model: 1 for leave-one-out thresholds, the patch methods, so refinement only raises them; 0.25 for the pooled methods)"`
	RefineMax      float64       `envconfig:"REFINE_MAX_FACTOR" default:"2" desc:"refinement never goes above this times the starting threshold"`
	DriftWindow    int           `envconfig:"DRIFT_WINDOW" default:"50" desc:"recent scores whose median is compared with the reference for drift"`
	DriftLimit     float64       `envconfig:"DRIFT_LIMIT" default:"1" desc:"drift when that median moves this many robust deviations (of log scores)"`
	DefectRate     float64       `envconfig:"DEFECT_RATE" default:"0.05" desc:"the most defective parts the line makes (a share): rejecting more than it and the target false-reject rate explain (about seven rejects in a row, or three times that rate for longer) sets rejects_high in status (0 < rate < 1)"`
	RejectWindow   int           `envconfig:"REJECT_WINDOW" default:"100" desc:"recent decisions whose reject rate status and metrics show (20..10000)"`
	FeedbackMemory int           `envconfig:"FEEDBACK_MEMORY" default:"5000" desc:"recent events remembered (by event id and part id) for operator feedback"`
	LearnGood      bool          `envconfig:"LEARN_GOOD" default:"true" desc:"a rejected part an operator confirms good (feedback topic) joins the model's good parts when its method allows it (patchcore): a new model version at INSPECTD_MODEL, the previous kept as .prev, then reloaded"`
	LearnKeep      int           `envconfig:"LEARN_KEEP" default:"32" desc:"frames of the most recently rejected parts kept in memory for LEARN_GOOD"`
	StateDir       string        `envconfig:"STATE_DIR" desc:"refinement state and confirmed-defect evidence (default: the parent of SPOOL_DIR)"`
	Heatmaps       bool          `envconfig:"HEATMAPS" default:"true" desc:"publish a JPEG heatmap overlay with each event"`
	HeatmapAll     bool          `envconfig:"HEATMAP_ALL" default:"false" desc:"heatmaps for good parts too (default: defects only)"`
	JPEGQuality    int           `envconfig:"JPEG_QUALITY" default:"85" desc:"heatmap JPEG quality 1..100"`
	Broker         string        `envconfig:"MQTT_BROKER" default:"tcp://127.0.0.1:1883" desc:"MQTT broker URL(s), comma separated: tcp://, ssl:// or mqtts://"`
	TopicPrefix    string        `envconfig:"MQTT_PREFIX" default:"inspectd" desc:"topic prefix of the installation"`
	ClientID       string        `envconfig:"MQTT_CLIENT_ID" desc:"MQTT client id (default inspectd-<camera>)"`
	Username       string        `envconfig:"MQTT_USERNAME" desc:"MQTT user name"`
	Password       string        `envconfig:"MQTT_PASSWORD" desc:"MQTT password"`
	CAFile         string        `envconfig:"MQTT_CA_FILE" desc:"CA certificate(s) to verify the broker (PEM)"`
	CertFile       string        `envconfig:"MQTT_CERT_FILE" desc:"client certificate (PEM)"`
	KeyFile        string        `envconfig:"MQTT_KEY_FILE" desc:"client key (PEM)"`
	KeepAlive      time.Duration `envconfig:"MQTT_KEEPALIVE" default:"30s" desc:"MQTT keep-alive; the broker publishes the last will (offline) after 1.5 of them without the daemon"`
	Events         string        `envconfig:"EVENTS" default:"inspection" desc:"publish an event per inspection or per defect"`
	SpoolDir       string        `envconfig:"SPOOL_DIR" default:"/var/lib/inspectd/spool" desc:"events waiting for the broker (kept across restarts)"`
	SpoolMaxBytes  int64         `envconfig:"SPOOL_MAX_BYTES" default:"268435456" desc:"spool bound; the oldest events are dropped beyond it"`
	HTTPAddr       string        `envconfig:"HTTP_ADDR" default:"127.0.0.1:9464" desc:"Prometheus /metrics and /healthz address (empty: off)"`
	StallTimeout   time.Duration `envconfig:"STALL_TIMEOUT" default:"10s" desc:"camera without frames this long is reopened"`
	StatusEvery    time.Duration `envconfig:"STATUS_INTERVAL" default:"5s" desc:"how often the retained status is refreshed"`
	LogLevel       string        `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat      string        `envconfig:"LOG_FORMAT" default:"auto" desc:"auto (journal under systemd, else text), text, journal (syslog priority prefixes such as <3>, no time) or json"`
	Scada
}

// MaxTriggerDelay bounds INSPECTD_TRIGGER_DELAY: a PLC waits for the event,
// and a part that needs longer to settle is better triggered later.
const MaxTriggerDelay = 10 * time.Second

// LoadDaemon reads and validates the daemon's settings.
func LoadDaemon() (Daemon, error) {
	var d Daemon
	if err := envconfig.Process(Prefix, &d); err != nil {
		return d, fmt.Errorf("configuration: %w", err)
	}
	return d, d.Validate()
}

// Validate names the variable of the first bad value.
func (d *Daemon) Validate() error {
	if err := d.Runtime.Validate(); err != nil {
		return err
	}
	bad := func(name string, v any, want string) error {
		return fmt.Errorf("configuration: %s_%s=%v: %s", Prefix, name, v, want)
	}
	d.operatingDefaults()
	switch {
	case d.Source == "":
		return bad("SOURCE", `""`, "required (a camera device, video file, stream URL, gst: pipeline, gige: camera or dir: hot folder)")
	case d.Camera == "" || strings.ContainsAny(d.Camera, "/+#"):
		return bad("CAMERA", d.Camera, "want a non-empty id without / + #")
	case d.Model == "":
		return bad("MODEL", `""`, "required")
	case d.Trigger != "continuous" && d.Trigger != "mqtt":
		return bad("TRIGGER", d.Trigger, "want continuous or mqtt")
	case d.TriggerDelay < 0 || d.TriggerDelay > MaxTriggerDelay:
		return bad("TRIGGER_DELAY", d.TriggerDelay, "want 0s..10s")
	case d.MaxRate <= 0 || d.MaxRate > 1000:
		return bad("MAX_RATE", d.MaxRate, "want 0 < rate <= 1000")
	case d.Transforms < 0 || d.Transforms > 360:
		return bad("TRANSFORMS", d.Transforms, "want 0..360")
	case d.Threshold < 0:
		return bad("THRESHOLD", d.Threshold, "want >= 0")
	case !(d.FRR >= 0 && d.FRR < 0.5):
		return bad("FRR", d.FRR, "want 0 (the model's) or a rate 0 < FRR < 0.5")
	case d.FRR > 0 && d.Threshold > 0:
		return bad("FRR", d.FRR, "INSPECTD_THRESHOLD is set too: give one of them")
	case d.Refine != "on" && d.Refine != "off" && d.Refine != "auto":
		return bad("REFINE", d.Refine, "want on, off or auto")
	case d.RefineAfter < 20 || d.RefineAfter > 100_000:
		return bad("REFINE_AFTER", d.RefineAfter, "want 20..100000")
	case d.RefineWindow < d.RefineAfter || d.RefineWindow > 100_000:
		return bad("REFINE_WINDOW", d.RefineWindow, "want REFINE_AFTER..100000")
	case !(d.RefineMin >= 0 && d.RefineMin <= 1):
		return bad("REFINE_MIN_FACTOR", d.RefineMin, "want 0 (by the model) or 0 < factor <= 1")
	case !(d.RefineMax >= 1 && d.RefineMax <= 100):
		return bad("REFINE_MAX_FACTOR", d.RefineMax, "want 1 <= factor <= 100")
	case d.DriftWindow < 5 || d.DriftWindow > d.RefineWindow:
		return bad("DRIFT_WINDOW", d.DriftWindow, "want 5..REFINE_WINDOW")
	case !(d.DriftLimit > 0 && d.DriftLimit <= 100):
		return bad("DRIFT_LIMIT", d.DriftLimit, "want 0 < limit <= 100")
	case !(d.DefectRate > 0 && d.DefectRate < 1):
		return bad("DEFECT_RATE", d.DefectRate, "want a share 0 < rate < 1")
	case d.RejectWindow < 20 || d.RejectWindow > 10_000:
		return bad("REJECT_WINDOW", d.RejectWindow, "want 20..10000")
	case d.FeedbackMemory < 1 || d.FeedbackMemory > 1_000_000:
		return bad("FEEDBACK_MEMORY", d.FeedbackMemory, "want 1..1000000")
	case d.LearnKeep < 1 || d.LearnKeep > 1024:
		return bad("LEARN_KEEP", d.LearnKeep, "want 1..1024")
	case d.JPEGQuality < 1 || d.JPEGQuality > 100:
		return bad("JPEG_QUALITY", d.JPEGQuality, "want 1..100")
	case d.Events != "inspection" && d.Events != "defect":
		return bad("EVENTS", d.Events, "want inspection or defect")
	case d.KeepAlive < time.Second:
		return bad("MQTT_KEEPALIVE", d.KeepAlive, "want at least 1s")
	case d.SpoolDir == "":
		return bad("SPOOL_DIR", `""`, "required")
	case d.SpoolMaxBytes < 1<<20:
		return bad("SPOOL_MAX_BYTES", d.SpoolMaxBytes, "want at least 1048576")
	case d.StallTimeout < 100*time.Millisecond:
		return bad("STALL_TIMEOUT", d.StallTimeout, "want at least 100ms")
	case d.StatusEvery < 100*time.Millisecond:
		return bad("STATUS_INTERVAL", d.StatusEvery, "want at least 100ms")
	}
	switch d.LogFormat {
	case "", "auto", "text", "journal", "json":
	default:
		return bad("LOG_FORMAT", d.LogFormat, "want auto, text, journal or json")
	}
	switch d.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return bad("LOG_LEVEL", d.LogLevel, "want debug, info, warn or error")
	}
	if d.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(d.HTTPAddr); err != nil {
			return bad("HTTP_ADDR", d.HTTPAddr, "want host:port")
		}
	}
	if d.StateDir == "" {
		d.StateDir = filepath.Dir(filepath.Clean(d.SpoolDir))
	}
	if (d.CertFile == "") != (d.KeyFile == "") {
		return bad("MQTT_CERT_FILE", d.CertFile, "client certificate and key (MQTT_KEY_FILE) go together")
	}
	tlsBrokers, plainBrokers := 0, 0
	for _, b := range d.Brokers() {
		scheme, _, _ := strings.Cut(strings.ToLower(b), "://")
		if scheme == "ssl" || scheme == "tls" || scheme == "mqtts" {
			tlsBrokers++
		} else {
			plainBrokers++
		}
	}
	if tlsBrokers > 0 && plainBrokers > 0 {
		return bad("MQTT_BROKER", redact.String(d.Broker), "mixes TLS (ssl://, mqtts://) and plain TCP brokers: when TLS fails the client would try the plain one and send the password in clear; list brokers of one kind")
	}
	return d.Scada.validate(d.Camera)
}

// operatingDefaults fills the operating-point settings a Daemon made in code
// (not by LoadDaemon) left at zero, with the defaults LoadDaemon uses.
func (d *Daemon) operatingDefaults() {
	if d.Refine == "" {
		d.Refine = "auto"
	}
	d.RefineAfter = cmp.Or(d.RefineAfter, 100)
	d.RefineWindow = cmp.Or(d.RefineWindow, max(1000, d.RefineAfter))
	d.RefineMax = cmp.Or(d.RefineMax, 2)
	d.DriftWindow = cmp.Or(d.DriftWindow, 50)
	d.DriftLimit = cmp.Or(d.DriftLimit, 1)
	d.DefectRate = cmp.Or(d.DefectRate, 0.05)
	d.RejectWindow = cmp.Or(d.RejectWindow, 100)
	d.FeedbackMemory = cmp.Or(d.FeedbackMemory, 5000)
	d.LearnKeep = cmp.Or(d.LearnKeep, 32)
}

// Refining reports whether refinement runs for a model whose threshold the
// line may move down to minFactor times its start: never with a fixed
// INSPECTD_THRESHOLD; with INSPECTD_REFINE=auto only when minFactor >= 1.
// Raising only was measured to halve the false rejects of the calibrated
// threshold on the line, for a few points of catches; lowering a fold
// threshold by default was not measured to help (README, "Refinement").
func (d Daemon) Refining(minFactor float64) bool {
	if d.Threshold != 0 {
		return false
	}
	return d.Refine == "on" || (d.Refine == "auto" && minFactor >= 1)
}

// Brokers splits the broker list.
func (d Daemon) Brokers() []string {
	var out []string
	for _, b := range strings.Split(d.Broker, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}
