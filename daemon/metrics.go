package daemon

import (
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/inspectd/inspectd/alerts"
)

// metrics are the Prometheus series of one daemon (its own registry, so tests
// can run several daemons in one process).
type metrics struct {
	reg               *prometheus.Registry
	frames            prometheus.Counter
	inspections       *prometheus.CounterVec
	scores            prometheus.Histogram
	latency           prometheus.Histogram
	inference         prometheus.Histogram
	captureReconnects prometheus.CounterFunc
	spoolDepth        prometheus.GaugeFunc
	errors            *prometheus.CounterVec
	info              *prometheus.GaugeVec
	reloads           *prometheus.CounterVec

	threshold        *prometheus.GaugeVec
	thresholdSource  string
	thresholdMu      sync.Mutex
	thresholdChanges *prometheus.CounterVec
	drift            prometheus.Gauge
	rejectRate       prometheus.Gauge
	rejectsHigh      prometheus.Gauge
	feedback         *prometheus.CounterVec
	feedbackDropped  prometheus.CounterFunc
	learned          *prometheus.CounterVec
	commands         *prometheus.CounterVec
	offShape         prometheus.Counter
}

func newMetrics(captureReconnects, spoolDepth, feedbackDropped func() float64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		frames: prometheus.NewCounter(prometheus.CounterOpts{Name: "inspectd_frames_total",
			Help: "Frames taken from the camera for inspection."}),
		inspections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "inspectd_inspections_total",
			Help: "Inspections by verdict."}, []string{"verdict"}),
		scores: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "inspectd_score",
			Help: "Anomaly scores divided by the threshold (1 = on the threshold).", Buckets: prometheus.ExponentialBuckets(0.05, 1.5, 16)}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "inspectd_latency_seconds",
			Help: "Frame capture to event queued.", Buckets: prometheus.ExponentialBuckets(0.01, 1.6, 16)}),
		inference: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "inspectd_inference_seconds",
			Help: "Backbone, flow and heatmap per inspection.", Buckets: prometheus.ExponentialBuckets(0.01, 1.6, 16)}),
		captureReconnects: prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "inspectd_capture_reconnects_total",
			Help: "Times the camera was reopened after an error or stall."}, captureReconnects),
		spoolDepth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "inspectd_spool_depth",
			Help: "Events waiting in the on-disk spool for the broker."}, spoolDepth),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "inspectd_errors_total",
			Help: "Errors by stage."}, []string{"stage"}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "inspectd_model_info",
			Help: "The model and runtime in use (value 1)."}, []string{"model_id", "runtime"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "inspectd_model_reloads_total",
			Help: "Model reloads (SIGHUP) by result."}, []string{"result"}),
		threshold: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "inspectd_threshold",
			Help: "Decision threshold in force; source: calibrated, override, frr or refined."}, []string{"source"}),
		thresholdChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "inspectd_threshold_changes_total",
			Help: "Threshold moves on the line by reason: refined (from the stream), feedback (confirmed-good parts), drift (back to the start: scores drifted up), restored (saved state at start)."}, []string{"reason"}),
		drift: prometheus.NewGauge(prometheus.GaugeOpts{Name: "inspectd_score_drift",
			Help: "Median of recent log scores minus the reference, in robust deviations (drift beyond INSPECTD_DRIFT_LIMIT)."}),
		rejectRate: prometheus.NewGauge(prometheus.GaugeOpts{Name: "inspectd_recent_reject_rate",
			Help: "Share of the last INSPECTD_REJECT_WINDOW decisions that rejected the part."}),
		rejectsHigh: prometheus.NewGauge(prometheus.GaugeOpts{Name: "inspectd_rejects_high",
			Help: "1 while the line rejects more than the target false-reject rate and INSPECTD_DEFECT_RATE explain (a Bernoulli CUSUM against three times that rate; about seven rejects in a row)."}),
		feedback: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "inspectd_feedback_total",
			Help: "Operator feedback by result: false_reject, good, defect, missed_defect, unknown_event, duplicate, invalid."}, []string{"result"}),
		feedbackDropped: prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "inspectd_feedback_dropped_total",
			Help: "Feedback messages dropped because they came faster than they were handled."}, feedbackDropped),
		learned: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "inspectd_learned_total",
			Help: "Confirmed-good rejected parts offered to the model (INSPECTD_LEARN_GOOD) by result: added (new model version), covered (nothing new), no_frame (no longer kept), refused (method or bound), failed."}, []string{"result"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "inspectd_commands_total",
			Help: "MQTT commands (<prefix>/<camera>/<command>/set) by command and result: applied, refused (invalid, out of range, retained) or failed (a model that does not load)."}, []string{"command", "result"}),
		offShape: prometheus.NewCounter(prometheus.CounterOpts{Name: "inspectd_off_shape_total",
			Help: "Parts whose aspect ratio lay outside the good parts' the model was calibrated on (scored all the same; left out of refinement and drift)."}),
	}
	m.reg.MustRegister(m.frames, m.inspections, m.scores, m.latency, m.inference, m.captureReconnects, m.spoolDepth, m.errors, m.info, m.reloads,
		m.threshold, m.thresholdChanges, m.drift, m.rejectRate, m.rejectsHigh, m.feedback, m.feedbackDropped, m.learned, m.commands, m.offShape)
	return m
}

// setThreshold shows the threshold in force under its source (one series).
func (m *metrics) setThreshold(t float64, source string) {
	m.thresholdMu.Lock()
	defer m.thresholdMu.Unlock()
	if source != m.thresholdSource {
		m.threshold.Reset()
		m.thresholdSource = source
	}
	m.threshold.WithLabelValues(source).Set(t)
}

// processMetrics registers the Go runtime's and the process's collectors
// (memory, goroutines, GC, CPU, open files) and inspectd_build_info.
func (m *metrics) processMetrics(version string) {
	goVersion, revision := runtime.Version(), "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: "inspectd_build_info",
		Help:        "The running binary (value 1): version, Go version and VCS revision.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": goVersion, "revision": revision}})
	info.Set(1)
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), info)
}

// publisherMetrics registers the publisher's counters: connection, events
// acknowledged, triggers refused or dropped, and the spool's drops, corrupt
// entries and failed writes.
func (m *metrics) publisherMetrics(stats func() alerts.Stats) {
	counter := func(name, help string, v func(alerts.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v(stats())) })
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "inspectd_mqtt_connected",
			Help: "1 while the event connection to the broker is up, else 0."}, func() float64 {
			if stats().Connected {
				return 1
			}
			return 0
		}),
		counter("inspectd_events_published_total", "Events the broker acknowledged (a resent event may count twice).",
			func(s alerts.Stats) uint64 { return s.Published }),
		counter("inspectd_triggers_dropped_total", "MQTT triggers refused (payload too large, bad part id) or dropped (queue full).",
			func(s alerts.Stats) uint64 { return s.TriggersDropped }),
		counter("inspectd_commands_dropped_total", "MQTT commands dropped because they came faster than they were handled.",
			func(s alerts.Stats) uint64 { return s.CommandsDropped }),
		counter("inspectd_spool_dropped_total", "Events dropped, oldest first, because the spool was full.",
			func(s alerts.Stats) uint64 { return s.Dropped }),
		counter("inspectd_spool_corrupt_total", "Spool entries moved aside as unreadable.",
			func(s alerts.Stats) uint64 { return s.Corrupt }),
		counter("inspectd_spool_write_errors_total", "Failed spool writes (disk full, I/O error); the events wait in memory and are written again.",
			func(s alerts.Stats) uint64 { return s.SpoolWriteErrors }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "inspectd_spool_held",
			Help: "Events kept in memory because the spool could not be written."}, func() float64 { return float64(stats().SpoolHeld) }),
	)
}
