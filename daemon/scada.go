package daemon

import (
	"context"
	"fmt"
	"image"
	"math"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/inspectd/inspectd/alerts"
	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/hass"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/internal/mqttx"
	"github.com/inspectd/inspectd/pipeline"
	"github.com/inspectd/inspectd/sparkplug"
)

// StatePaused is the status state while inspection is switched off by a
// command (inspection/set OFF, Sparkplug DCMD Config/Inspection Enabled =
// false).
const StatePaused = alerts.StatePaused

// Hook hears of every inspection and status: the optional SCADA dialects
// (Sparkplug B, Home Assistant) that run beside the JSON topics. Calls come
// from the inspection loop and must not block on the network.
type Hook interface {
	Inspected(ev alerts.Event, heatmapJPEG []byte)
	StatusChanged(st alerts.Status)
	Close(ctx context.Context) error
}

// startHooks starts the dialects the configuration asks for.
func (d *Daemon) startHooks() error {
	cfg := d.cfg
	conn := mqttx.Conn{Brokers: cfg.Brokers(), Username: cfg.Username, Password: cfg.Password,
		CAFile: cfg.CAFile, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, KeepAlive: cfg.KeepAlive}
	if cfg.Sparkplug {
		n, err := sparkplug.Start(sparkplug.Config{Conn: conn, ClientID: cfg.SparkplugClientID,
			GroupID: cfg.SparkplugGroup, EdgeNodeID: cfg.SparkplugNode, DeviceID: cfg.SparkplugDevice,
			PrimaryHostID: cfg.SparkplugHost, BdSeqFile: filepath.Join(cfg.SpoolDir, "sparkplug.bdseq"), Version: d.version, Status: d.Status(), Logger: d.log, Control: d})
		if err != nil {
			return fmt.Errorf("sparkplug: %w", err)
		}
		d.hooks = append(d.hooks, n)
		// Commands come from the network: counted by result.
		for _, c := range []struct {
			result string
			get    func(sparkplug.Stats) uint64
		}{
			{"applied", func(s sparkplug.Stats) uint64 { return s.Commands }},
			{"refused", func(s sparkplug.Stats) uint64 { return s.Refused }},
			{"dropped", func(s sparkplug.Stats) uint64 { return s.CommandsDropped }},
		} {
			get := c.get
			d.met.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "inspectd_sparkplug_commands_total",
				Help: "Sparkplug NCMD/DCMD commands by result (refused: invalid, unknown, retained or undecodable).", ConstLabels: prometheus.Labels{"result": c.result}},
				func() float64 { return float64(get(n.Stats())) }))
		}
		d.met.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "inspectd_sparkplug_messages_dropped_total",
			Help: "Sparkplug messages dropped because the broker connection did not keep up."},
			func() float64 { return float64(n.Stats().MessagesDropped) }))
		d.log.Info("sparkplug B on", "group", cfg.SparkplugGroup, "edge_node", cfg.SparkplugNode, "device", cfg.SparkplugDevice)
	}
	if cfg.HomeAssistant || cfg.HeatmapLatest {
		topics := d.pub.Topics()
		p, err := hass.Start(hass.Config{Conn: conn, Discovery: cfg.HomeAssistant, Prefix: cfg.HAPrefix, NodeID: cfg.HANode,
			HeatmapLatest: topics.HeatmapBase + "/latest", Topics: topics, Camera: cfg.Camera, Version: d.version, Logger: d.log,
			Commands: cfg.Commands})
		if err != nil {
			return fmt.Errorf("home assistant: %w", err)
		}
		d.hooks = append(d.hooks, p)
	}
	return nil
}

func (d *Daemon) closeHooks(ctx context.Context) {
	for _, h := range d.hooks {
		if err := h.Close(ctx); err != nil {
			d.log.Warn("closing", "err", err)
		}
	}
}

func (d *Daemon) hookInspected(ev alerts.Event, jpg []byte) {
	if len(d.hooks) == 0 {
		return
	}
	ev.Camera = d.cfg.Camera
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	for _, h := range d.hooks {
		h.Inspected(ev, jpg)
	}
}

func (d *Daemon) hookStatus(st alerts.Status) {
	for _, h := range d.hooks {
		h.StatusChanged(st)
	}
}

// SourceCommand is the status's threshold_source while a threshold set by
// command (MQTT threshold/set or Sparkplug DCMD Config/Threshold) is in force.
const SourceCommand = "command"

// SetThreshold puts x in force until the daemon stops, over the operating
// point (which goes on observing scores, so refinement and drift keep
// their state) and across model reloads. It is not saved: a restart is
// back to the operating point.
func (d *Daemon) SetThreshold(x float64) error {
	if err := checkThreshold(x); err != nil {
		return err
	}
	d.thrOverride.Store(math.Float64bits(x))
	d.log.Info("threshold set by command", "threshold", x)
	d.updateOperatingMetrics(d.cur.Load())
	d.publishStatus()
	return nil
}

// Threshold is the threshold in force.
func (d *Daemon) Threshold() float64 {
	t, _ := d.thresholdInForce(d.cur.Load())
	return t
}

// thresholdInForce is the commanded threshold, else the operating point's.
func (d *Daemon) thresholdInForce(a *active) (float64, string) {
	if x := math.Float64frombits(d.thrOverride.Load()); x > 0 {
		return x, SourceCommand
	}
	t, src := a.op.Threshold()
	return t, string(src)
}

// commandStatus shows a commanded threshold in the status.
func (d *Daemon) commandStatus(st *alerts.Status) {
	if x := math.Float64frombits(d.thrOverride.Load()); x > 0 {
		st.Threshold, st.ThresholdSource = x, SourceCommand
	}
}

// SetInspecting pauses (false) or resumes (true) inspection. While paused
// no frames are taken, the status state is "paused", and hot-folder files
// wait.
func (d *Daemon) SetInspecting(on bool) {
	if d.paused.Swap(!on) == !on {
		return
	}
	d.log.Info("inspection switched by command", "inspecting", on)
	select {
	case d.resume <- struct{}{}:
	default:
	}
	d.publishStatus()
}

// Inspecting says whether inspection runs (not paused by command).
func (d *Daemon) Inspecting() bool { return !d.paused.Load() }

// waitWhilePaused blocks while inspection is paused; false when ctx ended.
func (d *Daemon) waitWhilePaused(ctx context.Context) bool {
	for d.paused.Load() {
		d.beat.Store(time.Now().UnixNano())
		select {
		case <-ctx.Done():
			return false
		case <-d.resume:
		case <-time.After(time.Second): // keep the heartbeat going
		}
	}
	return true
}

// eventV2 fills the fields of event schema v2.
// threshold and defect are the operating point's decision (not the model's).
func (d *Daemon) eventV2(l *pipeline.Loaded, fr capture.Frame, triggered time.Time, res pipeline.Result, threshold float64, defect bool) alerts.EventV2 {
	man := l.Manifest()
	v := alerts.EventV2{BootID: d.bootID, SoftwareVersion: d.version, ModelCreated: man.Training.Created.UTC(), OffShape: res.OffShape}
	if !fr.Time.IsZero() {
		v.CapturedAt = fr.Time.UTC()
	}
	if !triggered.IsZero() {
		v.TriggeredAt = triggered.UTC()
	}
	if r := res.Score / threshold; threshold > 0 && !math.IsNaN(r) && !math.IsInf(r, 0) {
		v.ScoreRatio = r
	}
	if defect && res.Heat != nil {
		// The heatmap covers the model's ROI, or the whole frame.
		part := image.Rect(0, 0, fr.Mat.Cols(), fr.Mat.Rows())
		if man.ROI != "" {
			if roi, err := imageops.ParseROI(man.ROI); err == nil {
				part = roi.Intersect(part)
			}
		}
		v.DefectLocation = locate(res.Heat, pipeline.HeatSize, part, man.HeatmapGood)
	}
	return v
}
