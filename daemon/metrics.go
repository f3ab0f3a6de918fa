package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Prometheus series of one daemon (its own registry, so tests
// can run several daemons in one process).
type metrics struct {
	reg           *prometheus.Registry
	frames        prometheus.Counter
	inspections   *prometheus.CounterVec
	scores        prometheus.Histogram
	latency       prometheus.Histogram
	inference     prometheus.Histogram
	captureErrors prometheus.CounterFunc
	spoolDepth    prometheus.GaugeFunc
	errors        *prometheus.CounterVec
	info          *prometheus.GaugeVec
	reloads       *prometheus.CounterVec
}

func newMetrics(captureErrors, spoolDepth func() float64) *metrics {
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
		captureErrors: prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "inspectd_capture_reconnects_total",
			Help: "Times the camera was reopened after an error or stall."}, captureErrors),
		spoolDepth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "inspectd_spool_depth",
			Help: "Events waiting in the on-disk spool for the broker."}, spoolDepth),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "inspectd_errors_total",
			Help: "Errors by stage."}, []string{"stage"}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "inspectd_model_info",
			Help: "The model and runtime in use (value 1)."}, []string{"model_id", "runtime"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "inspectd_model_reloads_total",
			Help: "Model reloads (SIGHUP) by result."}, []string{"result"}),
	}
	m.reg.MustRegister(m.frames, m.inspections, m.scores, m.latency, m.inference, m.captureErrors, m.spoolDepth, m.errors, m.info, m.reloads)
	return m
}
