// Package daemon is `inspectd run`: frames from a camera, inspected with a
// calibrated model, published over MQTT as events with heatmaps, for months.
// A camera that drops out is reopened, a broker that is down is bridged by the
// on-disk spool, SIGHUP reloads the model (a bad one is refused and the old one
// keeps running), SIGTERM finishes the inspection in flight and exits.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sdaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/inspectd/inspectd/alerts"
	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/internal/options"
	"github.com/inspectd/inspectd/internal/redact"
	"github.com/inspectd/inspectd/pipeline"
)

// ShutdownGrace bounds SIGTERM handling: the inspection in flight finishes
// and the spool is flushed within it (systemd's TimeoutStopSec is larger).
const ShutdownGrace = 8 * time.Second

// Daemon runs one camera.
type Daemon struct {
	cfg     config.Daemon
	log     *slog.Logger
	version string

	hup      chan os.Signal // SIGHUP, installed first thing in New
	cur      atomic.Pointer[active]
	pub      *alerts.Publisher
	src      capture.Source
	met      *metrics
	lastErr  atomic.Pointer[string]
	state    atomic.Pointer[alerts.State]
	beat     atomic.Int64 // unix nanos of the loop's last sign of life
	httpAddr atomic.Pointer[string]
	ln       net.Listener // /metrics and /healthz, bound in New; nil when off
	seq      atomic.Uint64

	notifyMu   sync.Mutex
	lastNotify string // the last STATUS= sent to systemd

	rateMu      sync.Mutex
	rateFrames  uint64
	rateInspect uint64
	rateAt      time.Time
	fps, ips    float64
	inspected   atomic.Uint64

	recent   *recent
	drifting atomic.Bool
	// rejectsHigh is the reject-rate check's last state, for saying when it changes.
	rejectsHigh atomic.Bool
	offShape    atomic.Pointer[string] // why the last part was off shape; nil when it was not
	sinceSave   atomic.Uint64
	saveMu      sync.Mutex
	evidenceMu  sync.Mutex
	evidence    [][]byte // confirmed-defect lines, loaded on first use
	fbDone      chan struct{}
	rejected    *rejectedFrames // nil unless INSPECTD_LEARN_GOOD
	cmdDone     chan struct{}

	// OnEvent, when set, is called after each event is queued (tests, demo).
	OnEvent func(alerts.Event)

	// SCADA dialects and commands (scada.go).
	hooks       []Hook
	thrOverride atomic.Uint64 // float64 bits; 0: none
	paused      atomic.Bool
	resume      chan struct{}
	bootID      string

	// freshAfterTrigger: a trigger is answered with a frame captured after
	// it. True for cameras, streams and paced video files, which keep only
	// their newest frame; false for hot folders (each file is the part) and
	// unpaced video files (replayed frame by frame, every frame inspected).
	freshAfterTrigger bool
}

// New loads the model, opens the publisher (a broker that is down is not an
// error: events are spooled) and the camera (retried in the background).
//
// The SIGHUP handler is installed before anything slow: a reload requested
// while the daemon starts is queued and done once it runs, instead of the
// signal's default action killing the process.
func New(ctx context.Context, cfg config.Daemon, log *slog.Logger, version string) (_ *Daemon, err error) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer func() {
		if err != nil {
			signal.Stop(hup)
		}
	}()
	// A config made in code (the demo) rather than by config.LoadDaemon
	// gets the defaults of the settings it left out.
	if cfg.StateDir == "" {
		cfg.StateDir = filepath.Dir(filepath.Clean(cfg.SpoolDir))
	}
	if cfg.FeedbackMemory == 0 {
		cfg.FeedbackMemory = 5000
	}
	d := &Daemon{cfg: cfg, log: log, version: version, hup: hup, recent: newRecent(cfg.FeedbackMemory), fbDone: make(chan struct{}), cmdDone: make(chan struct{}),
		resume: make(chan struct{}, 1), bootID: alerts.NewID()}
	if cfg.LearnGood {
		d.rejected = newRejectedFrames(max(cfg.LearnKeep, 1))
	}
	d.setState(alerts.StateStarting)
	// The metrics address is bound first, before the model is loaded or the
	// broker is touched: a second camera's instance left on the first one's
	// port fails at once with a setting to fix, and never connects with
	// its client id or opens its camera.
	if cfg.HTTPAddr != "" {
		if d.ln, err = listen(cfg.HTTPAddr); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				d.ln.Close()
			}
		}()
	}
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return nil, fmt.Errorf("state directory (INSPECTD_STATE_DIR): %w", err)
	}
	// Metrics first: loading the model's operating point counts into them.
	var reconnects, spoolDepth, fbDropped func() float64
	d.met = newMetrics(
		func() float64 { return reconnects() },
		func() float64 { return spoolDepth() },
		func() float64 { return fbDropped() })
	l, err := d.loadModel(cfg.Model)
	if err != nil {
		return nil, err
	}
	d.cur.Store(l)
	d.updateOperatingMetrics(l)
	d.pub, err = alerts.New(ctx, PublisherConfig(cfg, log))
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("MQTT: %w", err)
	}
	// Loop and pacing only mean something for video files.
	kind, _, _ := capture.ParseURI(cfg.Source)
	isFile := kind == capture.KindFile
	d.freshAfterTrigger = kind != capture.KindHotFolder && !(isFile && !cfg.SourcePace)
	d.src, err = capture.Open(ctx, capture.Config{URI: cfg.Source, Loop: cfg.SourceLoop && isFile, Pace: cfg.SourcePace && isFile,
		MaxRate: d.maxRate(), StallTimeout: cfg.StallTimeout, Logger: log, ImageLimits: d.imageLimits(),
		OnFailed: func(part capture.Frame, reason error) {
			// A hot-folder file refused before inspection still gets its
			// one event.
			d.partError(context.WithoutCancel(ctx), d.eventID(nil, &part), part.PartID, part.Time, time.Time{}, reason)
		}})
	if err != nil {
		d.pub.Close(ctx)
		l.Close()
		return nil, fmt.Errorf("camera: %w", err)
	}
	reconnects = func() float64 { return float64(d.src.Status().Reconnects) }
	spoolDepth = func() float64 { return float64(d.pub.SpoolDepth()) }
	fbDropped = func() float64 { return float64(d.pub.Stats().FeedbackDropped) }
	d.met.publisherMetrics(d.pub.Stats)
	d.met.processMetrics(version)
	d.met.info.WithLabelValues(l.Manifest().ID, l.Runtime.Describe()).Set(1)
	if err := d.startHooks(); err != nil {
		d.closeHooks(ctx)
		d.src.Close()
		d.pub.Close(ctx)
		l.Close()
		return nil, err
	}
	return d, nil
}

// PublisherConfig is the one mapping of the daemon's settings to the MQTT
// publisher's; `calibrate --camera` starts from it too, then moves to its
// own sub-tree, client id and spool.
func PublisherConfig(cfg config.Daemon, log *slog.Logger) alerts.Config {
	mode := alerts.PerInspection
	if cfg.Events == "defect" {
		mode = alerts.PerDefect
	}
	return alerts.Config{
		Brokers: cfg.Brokers(), TopicPrefix: cfg.TopicPrefix, Camera: cfg.Camera, ClientID: cfg.ClientID,
		Username: cfg.Username, Password: cfg.Password, CAFile: cfg.CAFile, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile,
		Mode: mode, KeepAlive: cfg.KeepAlive, SpoolDir: cfg.SpoolDir, SpoolMaxBytes: cfg.SpoolMaxBytes, StatusInterval: time.Second,
		Commands: cfg.Commands, Logger: log,
	}
}

// ErrListen wraps a metrics address (INSPECTD_HTTP_ADDR) that cannot be
// bound: a setting to fix, not a fault a restart would cure.
var ErrListen = errors.New("metrics address unusable")

// listen binds the metrics address, explaining the usual cause when it is
// taken: another camera's instance on the same host with the same port.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	switch {
	case err == nil:
		return ln, nil
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("%w: INSPECTD_HTTP_ADDR=%s is in use by another process, often another camera's inspectd on this host: give each camera its own port in /etc/inspectd/<camera>.env (cam0 9464, cam1 9465, ...) or INSPECTD_HTTP_ADDR= to switch it off: %w", ErrListen, addr, err)
	default:
		return nil, fmt.Errorf("%w: INSPECTD_HTTP_ADDR=%s: %w", ErrListen, addr, err)
	}
}

func (d *Daemon) imageLimits() imageops.Limits {
	return imageops.Limits{MaxPixels: d.cfg.MaxImagePixels, MaxBytes: d.cfg.MaxImageBytes}
}

// maxRate limits continuous inspection; hot folders and MQTT triggers are
// paced by their parts.
func (d *Daemon) maxRate() float64 {
	if d.cfg.Trigger == "continuous" {
		return d.cfg.MaxRate
	}
	return 0
}

func (d *Daemon) loadModel(path string) (*active, error) {
	l, err := pipeline.Open(options.Pipeline(d.cfg.Runtime), path)
	if err != nil {
		return nil, fmt.Errorf("loading model: %w", err)
	}
	if d.cfg.Transforms > 0 {
		l.SetTransforms(d.cfg.Transforms)
	}
	a, err := d.newOperating(l, d.cur.Load())
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("loading model: %w", err)
	}
	return a, nil
}

// Reload swaps in the model file; on failure the running model stays and the
// error is reported in status and metrics.
func (d *Daemon) Reload() error {
	l, err := d.loadModel(d.cfg.Model)
	if err != nil {
		d.met.reloads.WithLabelValues("refused").Inc()
		d.setErr(fmt.Errorf("model reload refused, still running %s: %w", d.cur.Load().Manifest().ID, err))
		return err
	}
	old := d.cur.Swap(l)
	d.drifting.Store(false)
	d.rejectsHigh.Store(l.op.Rejects().High)
	d.updateOperatingMetrics(l)
	d.saveState(l)
	d.met.info.Reset()
	d.met.info.WithLabelValues(l.Manifest().ID, l.Runtime.Describe()).Set(1)
	d.met.reloads.WithLabelValues("ok").Inc()
	d.log.Info("model reloaded", "model", l.Manifest().ID, "previous", old.Manifest().ID)
	// An inspection may still hold the old model: close it after a grace.
	time.AfterFunc(30*time.Second, func() { old.Close() })
	d.publishStatus()
	return nil
}

func (d *Daemon) setErr(err error) {
	// Status is published: no URL's password in it (the log is redacted by
	// its handler).
	s := redact.String(err.Error())
	d.lastErr.Store(&s)
	d.log.Error(s)
}

func (d *Daemon) setState(s alerts.State) { d.state.Store(&s) }

// Run inspects until ctx is cancelled (SIGTERM), then shuts down within
// ShutdownGrace. SIGHUP reloads the model.
func (d *Daemon) Run(ctx context.Context) error {
	defer signal.Stop(d.hup)

	var srv *http.Server
	if d.ln != nil {
		srv = &http.Server{Handler: d.handler(), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(d.ln)
		a := d.ln.Addr().String()
		d.httpAddr.Store(&a)
		d.log.Info("metrics and health", "addr", a)
	}

	d.setState(alerts.StateRunning)
	d.beat.Store(time.Now().UnixNano())
	d.rateMu.Lock()
	d.rateAt = time.Now()
	d.rateMu.Unlock()
	sdaemon.SdNotify(false, sdaemon.SdNotifyReady)
	d.publishStatus()

	loopDone := make(chan error, 1)
	go func() { loopDone <- d.loop(ctx) }()
	go func() { defer close(d.fbDone); d.feedbackLoop(d.pub.Feedback()) }()
	go d.commandLoop(d.pub.Commands())

	wd, _ := sdaemon.SdWatchdogEnabled(false)
	watch := time.NewTicker(max(wd/3, time.Second))
	defer watch.Stop()
	status := time.NewTicker(d.cfg.StatusEvery)
	defer status.Stop()
	var loopErr error
wait:
	for {
		select {
		case <-d.hup:
			_ = d.Reload() // a refused reload is reported by Reload (status, metrics, log); the old model runs on
		case <-status.C:
			d.publishStatus()
		case <-watch.C:
			// Ping only while the loop shows life, so systemd restarts a hung
			// daemon; the loop beats at least once a second even without frames.
			if wd > 0 && time.Since(time.Unix(0, d.beat.Load())) < wd {
				sdaemon.SdNotify(false, sdaemon.SdNotifyWatchdog)
			}
		case loopErr = <-loopDone:
			break wait
		}
	}
	sdaemon.SdNotify(false, sdaemon.SdNotifyStopping)
	d.setState(alerts.StateStopping)
	stopCtx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	if srv != nil {
		srv.Shutdown(stopCtx)
	}
	d.src.Close()
	d.publishStatus()
	d.closeHooks(stopCtx)
	if err := d.pub.Close(stopCtx); err != nil {
		d.log.Warn("publisher closed with events left in the spool (sent after restart)", "err", err)
	}
	<-d.fbDone // Close closed the feedback and command channels
	<-d.cmdDone
	d.saveState(d.cur.Load())
	d.cur.Load().Close()
	if errors.Is(loopErr, context.Canceled) {
		return nil
	}
	return loopErr
}

// triggerFrameWait bounds the wait for a frame after an MQTT trigger; a
// trigger that gets none is answered with an error event.
const triggerFrameWait = time.Second

// loop takes frames and inspects them until ctx ends.
//
// Every part gets exactly one event: a trigger (MQTT) or a hot-folder file
// that cannot be inspected (no frame within triggerFrameWait, camera error,
// ended video, a frame above the pixel limit, an inspection error) gets an
// event with verdict "error" and the reason, so a PLC waiting for a part id
// never waits forever.
func (d *Daemon) loop(ctx context.Context) error {
	ended := false
	for {
		d.beat.Store(time.Now().UnixNano())
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !d.waitWhilePaused(ctx) {
			return ctx.Err()
		}
		var trig *alerts.Trigger
		if d.cfg.Trigger == "mqtt" {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case t, ok := <-d.pub.Trigger():
				if !ok {
					return ctx.Err()
				}
				trig = &t
			case <-time.After(time.Second):
				continue
			}
		}
		if ended {
			if trig != nil {
				d.partError(ctx, d.eventID(trig, nil), trig.PartID, trig.Time, trig.Time, errors.New("no frame: the video source has ended"))
				continue
			}
			// A video file without loop has ended: stay up (status says so)
			// until stopped, as a service must not exit on its camera.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
				continue
			}
		}
		fr, err := d.nextFrame(ctx, trig)
		if err != nil {
			var reason error
			switch {
			case errors.Is(err, io.EOF):
				d.log.Info("video source ended", "source", redact.String(d.cfg.Source))
				d.setState(alerts.StateEnded)
				ended = true
				reason = errors.New("no frame: the video source has ended")
			case capture.FiresOnNext(d.src) && ctx.Err() == nil:
				// A camera fired per part (gige: trigger=software) says
				// why there is no frame: not ready, frame lost, no answer.
				d.met.errors.WithLabelValues("capture").Inc()
				reason = fmt.Errorf("no frame: camera: %w", err)
			case errors.Is(err, context.DeadlineExceeded):
				reason = fmt.Errorf("no frame from the camera within %v of the trigger", triggerFrameWait+d.triggerDelay())
			case ctx.Err() != nil:
				reason = errors.New("no frame: the daemon is stopping")
			default:
				d.met.errors.WithLabelValues("capture").Inc()
				d.setErr(fmt.Errorf("camera: %w", err))
				reason = fmt.Errorf("no frame: camera: %w", err)
			}
			if trig != nil {
				d.partError(ctx, d.eventID(trig, nil), trig.PartID, trig.Time, trig.Time, reason)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		partID, since := fr.PartID, fr.Time
		if trig != nil {
			partID, since = trig.PartID, trig.Time
		}
		d.met.frames.Inc()
		d.rateMu.Lock()
		d.rateFrames++
		d.rateMu.Unlock()
		// The inspection in flight finishes even when SIGTERM arrives: it runs
		// on a context that only a timeout ends.
		ictx, icancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownGrace)
		if px := int64(fr.Mat.Rows()) * int64(fr.Mat.Cols()); px > d.cfg.MaxImagePixels {
			err = fmt.Errorf("frame of %dx%d pixels above INSPECTD_MAX_IMAGE_PIXELS=%d", fr.Mat.Cols(), fr.Mat.Rows(), d.cfg.MaxImagePixels)
		} else {
			var triggeredAt time.Time
			if trig != nil {
				triggeredAt = trig.Time
			}
			err = d.inspect(ictx, fr, d.eventID(trig, &fr), partID, triggeredAt)
		}
		if err != nil {
			d.met.errors.WithLabelValues("inspect").Inc()
			d.setErr(err)
			// A part someone waits for (trigger) or that was handed over
			// (hot-folder file) gets its error event; continuous frames only
			// count, or a broken model would flood the broker.
			if trig != nil || fr.PartID != "" {
				var triggered time.Time
				if trig != nil {
					triggered = trig.Time
				}
				if d.partError(ictx, d.eventID(trig, &fr), partID, since, triggered, err) {
					d.failFrame(fr, err)
				}
			}
		}
		icancel()
		fr.Mat.Close()
	}
}

// triggerDelay is how long after a trigger the inspected frame must have
// been captured: INSPECTD_TRIGGER_DELAY, for sources whose frames have a
// capture time that relates to the trigger (see freshAfterTrigger).
func (d *Daemon) triggerDelay() time.Duration {
	if !d.freshAfterTrigger {
		return 0
	}
	return d.cfg.TriggerDelay
}

// nextFrame takes the frame to inspect, waiting at most triggerFrameWait
// (after the trigger delay, for a trigger).
//
// A live source keeps its newest frame, which for a trigger may have been
// grabbed before the part arrived, or while it was still moving: such frames
// are dropped until one captured at or after the trigger time plus
// INSPECTD_TRIGGER_DELAY arrives. Frames are stamped when grabbed
// (capture.Frame.Time), so the wait ends as soon as the camera delivers one.
//
// A camera fired per part (capture.FiresOnNext: gige: with trigger=software)
// is fired once the trigger delay has passed, and its frame is the part's.
func (d *Daemon) nextFrame(ctx context.Context, trig *alerts.Trigger) (capture.Frame, error) {
	if trig != nil && capture.FiresOnNext(d.src) {
		notBefore := trig.Time.Add(d.cfg.TriggerDelay)
		if wait := time.Until(notBefore); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return capture.Frame{}, ctx.Err()
			case <-t.C:
			}
		}
		nctx, cancel := context.WithTimeout(ctx, triggerFrameWait)
		defer cancel()
		fr, err := d.src.Next(nctx)
		if err == nil && fr.Time.Before(notBefore) { // the source promises otherwise
			fr.Mat.Close()
			return capture.Frame{}, fmt.Errorf("frame captured at %s, before the trigger (plus delay) at %s", fr.Time.Format(time.RFC3339Nano), notBefore.Format(time.RFC3339Nano))
		}
		return fr, err
	}
	if trig == nil || !d.freshAfterTrigger {
		nctx, cancel := context.WithTimeout(ctx, triggerFrameWait)
		defer cancel()
		return d.src.Next(nctx)
	}
	notBefore := trig.Time.Add(d.cfg.TriggerDelay)
	// The wait starts when the part has settled or when the loop gets to
	// the trigger, whichever is later: a trigger queued behind a slow
	// inspection still gets the full triggerFrameWait.
	nctx, cancel := context.WithDeadline(ctx, later(notBefore, time.Now()).Add(triggerFrameWait))
	defer cancel()
	for {
		fr, err := d.src.Next(nctx)
		if err != nil {
			return fr, err
		}
		if !fr.Time.Before(notBefore) {
			return fr, nil
		}
		d.log.Debug("frame captured before the trigger (plus delay) dropped", "part", trig.PartID,
			"captured", fr.Time, "not_before", notBefore)
		fr.Mat.Close()
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// partError publishes the error event of a part that could not be
// inspected; it reports whether the event was queued.
//
// It carries the schema v2 fields that do not need an inspection (boot id,
// so that seq stays gapless within a boot; software version, model
// creation, trigger time), with score_ratio 0.
func (d *Daemon) partError(ctx context.Context, id, partID string, since, triggered time.Time, reason error) bool {
	man := d.cur.Load().Manifest()
	ev := alerts.Event{ID: id, Seq: d.seq.Add(1), PartID: partID, Verdict: alerts.VerdictError,
		Reason: redact.String(reason.Error()), ModelID: man.ID,
		EventV2: alerts.EventV2{BootID: d.bootID, SoftwareVersion: d.version, ModelCreated: man.Training.Created.UTC()}}
	if !triggered.IsZero() {
		ev.TriggeredAt = triggered.UTC()
	}
	if !since.IsZero() {
		ev.LatencyMS = float64(time.Since(since).Microseconds()) / 1000
	}
	if err := d.pub.Publish(context.WithoutCancel(ctx), ev, nil); err != nil {
		if !errors.Is(err, alerts.ErrNotDurable) {
			d.log.Error("queueing error event", "part", partID, "reason", reason, "err", err)
			return false
		}
		d.met.errors.WithLabelValues("spool").Inc()
	}
	d.met.inspections.WithLabelValues(string(alerts.VerdictError)).Inc()
	d.log.Warn("part not inspected; error event sent", "part", partID, "reason", reason)
	if d.OnEvent != nil {
		d.OnEvent(ev)
	}
	return true
}

// failFrame settles a frame whose error event is queued: a hot-folder file
// goes to failed/ with the reason (it was not inspected, so not done/).
func (d *Daemon) failFrame(fr capture.Frame, reason error) {
	f, ok := d.src.(interface {
		Fail(capture.Frame, error) error
	})
	if !ok {
		return
	}
	if err := f.Fail(fr, reason); err != nil {
		d.log.Warn("moving the part aside", "part", fr.PartID, "err", err)
	}
}

// eventID is the id of the event of a part: derived from the part for a
// trigger (part id, receive time) and a hot-folder file (name, size,
// modification time), so that a part inspected again after a crash keeps
// its id; random for continuous frames.
func (d *Daemon) eventID(trig *alerts.Trigger, fr *capture.Frame) string {
	switch {
	case trig != nil:
		return alerts.PartEventID(d.cfg.Camera, "trigger", trig.PartID, trig.Time.UTC().Format(time.RFC3339Nano))
	case fr != nil && fr.PartID != "":
		return alerts.PartEventID(d.cfg.Camera, "file", fr.PartID, strconv.FormatInt(fr.Size, 10), strconv.FormatInt(fr.Time.UnixNano(), 10))
	}
	return alerts.NewID()
}

func (d *Daemon) inspect(ctx context.Context, fr capture.Frame, id, partID string, triggeredAt time.Time) error {
	l := d.cur.Load()
	res, err := l.Inspect(ctx, fr.Mat, d.cfg.Heatmaps)
	if err != nil {
		return fmt.Errorf("inspecting frame %d: %w", fr.Seq, err)
	}
	// The operating point's threshold decides (it may have been refined);
	// the decision is published once and never revisited.
	threshold, _ := d.thresholdInForce(l)
	defect := res.Score > threshold
	verdict := alerts.VerdictOK
	if defect {
		verdict = alerts.VerdictDefect
	}
	var jpg []byte
	if d.cfg.Heatmaps && (defect || d.cfg.HeatmapAll) {
		ov, err := l.Overlay(fr.Mat, res.Heat)
		if err != nil {
			return fmt.Errorf("heatmap overlay: %w", err)
		}
		jpg, err = imageops.EncodeJPEG(ov, d.cfg.JPEGQuality)
		ov.Close()
		if err != nil {
			return fmt.Errorf("heatmap JPEG: %w", err)
		}
	}
	ev := alerts.Event{ID: id, Seq: d.seq.Add(1), PartID: partID, Score: res.Score, Threshold: threshold,
		Verdict: verdict, ModelID: l.Manifest().ID, LatencyMS: float64(time.Since(fr.Time).Microseconds()) / 1000,
		EventV2: d.eventV2(l.Loaded, fr, triggeredAt, res, threshold, defect)}
	if err := d.pub.Publish(ctx, ev, jpg); err != nil {
		if !errors.Is(err, alerts.ErrNotDurable) {
			return fmt.Errorf("queueing event %d: %w", ev.Seq, err)
		}
		// Queued in memory and retried; status and metrics show it.
		d.met.errors.WithLabelValues("spool").Inc()
	}
	// Only now is the part safely recorded: a hot-folder file is marked done.
	if err := d.src.Ack(fr); err != nil {
		d.log.Warn("acknowledging frame", "part", fr.PartID, "err", err)
	}
	d.met.inspections.WithLabelValues(string(verdict)).Inc()
	d.met.scores.Observe(res.Score / threshold)
	if defect {
		d.keepRejected(ev.ID, fr.Mat)
	}
	d.recent.add(record{EventID: ev.ID, PartID: ev.PartID, Seq: ev.Seq, Time: time.Now().UTC(), Score: ev.Score, Threshold: threshold,
		Verdict: verdict, ModelID: ev.ModelID, key: l.key}, d.cfg.FeedbackMemory)
	if d.noteShape(res.OffShape) {
		// A wrong crop's score says nothing about the product's good
		// parts: it would move the refined threshold and the drift check.
		d.observe(l, res.Score, defect)
	}
	d.met.inference.Observe(res.Elapsed.Seconds())
	d.met.latency.Observe(ev.LatencyMS / 1000)
	d.inspected.Add(1)
	d.rateMu.Lock()
	d.rateInspect++
	d.rateMu.Unlock()
	d.hookInspected(ev, jpg)
	if d.OnEvent != nil {
		d.OnEvent(ev)
	}
	return nil
}

// noteShape counts parts off shape and logs (and publishes in the status)
// when parts go off shape and when they come back, not every part; it
// reports whether the part was within shape.
func (d *Daemon) noteShape(why string) bool {
	if why == "" {
		if d.offShape.Swap(nil) != nil {
			d.log.Info("parts are within the good parts' shapes again")
			d.publishStatus()
		}
		return true
	}
	d.met.offShape.Inc()
	if d.offShape.Swap(&why) == nil {
		d.log.Warn("part off shape: scored all the same, left out of refinement; check the crop, the ROI and the camera", "why", why)
		d.publishStatus()
	}
	return false
}

// Status is the current status message.
func (d *Daemon) Status() alerts.Status {
	d.rateMu.Lock()
	if dt := time.Since(d.rateAt).Seconds(); dt >= 1 {
		d.fps, d.ips = float64(d.rateFrames)/dt, float64(d.rateInspect)/dt
		d.rateFrames, d.rateInspect, d.rateAt = 0, 0, time.Now()
	}
	fps, ips := d.fps, d.ips
	d.rateMu.Unlock()
	l := d.cur.Load()
	st := alerts.Status{State: *d.state.Load(), FPS: fps, InspectionsPerSec: ips, ModelID: l.Manifest().ID,
		Provider: l.Runtime.Describe(), Version: d.version}
	operatingStatus(&st, l)
	d.commandStatus(&st)
	// The spool's counters, as the status topic carries them (SetStatus fills
	// them again when it sends), so /healthz shows them too.
	ps := d.pub.Stats()
	st.SpoolDepth, st.EventsPublished, st.EventsDropped, st.SpoolCorrupt = ps.SpoolDepth, ps.Published, ps.Dropped, ps.Corrupt
	cs := d.src.Status()
	// Connecting is normal for a moment at start; reconnecting means the
	// camera failed or stalled.
	if st.State == alerts.StateRunning && d.paused.Load() {
		st.State = StatePaused
	}
	if st.State == alerts.StateRunning && cs.State == capture.StateReconnecting {
		st.State = alerts.StateDegraded
		if cs.LastError != "" {
			st.LastError = "camera " + string(cs.State) + ": " + cs.LastError
		}
	}
	// Events that cannot be written to the spool wait in memory: running,
	// but not durable, so degraded until the disk takes them.
	if ps.SpoolError != "" {
		if st.State == alerts.StateRunning {
			st.State = alerts.StateDegraded
		}
		if st.LastError != "" {
			st.LastError += "; "
		}
		st.LastError += fmt.Sprintf("spool not writable, %d events held in memory: %s", ps.SpoolHeld, ps.SpoolError)
		st.SpoolHeld, st.SpoolWriteErrors, st.SpoolError = ps.SpoolHeld, ps.SpoolWriteErrors, ps.SpoolError
	}
	if why := d.offShape.Load(); why != nil {
		if st.State == alerts.StateRunning {
			st.State = alerts.StateDegraded
		}
		if st.LastError != "" {
			st.LastError += "; "
		}
		st.LastError += "last part off shape: " + *why
	}
	if st.RejectsHigh {
		if st.State == alerts.StateRunning {
			st.State = alerts.StateDegraded
		}
		if st.LastError != "" {
			st.LastError += "; "
		}
		o := st.Operating
		st.LastError += fmt.Sprintf("rejecting more parts than the threshold and INSPECTD_DEFECT_RATE explain (at most %.1f%%; %d of the last %d parts rejected): "+
			"review the rejects (feedback topic) or recalibrate with good parts like these", 100*o.ExpectedRejectRate, o.RecentRejects, o.RecentDecisions)
	}
	if e := d.lastErr.Load(); e != nil {
		if st.LastError != "" {
			st.LastError += "; "
		}
		st.LastError += *e
	}
	return st
}

func (d *Daemon) publishStatus() {
	st := d.Status()
	d.pub.SetStatus(st)
	d.publishStates(st)
	d.hookStatus(st)
	d.notifyStatus(st)
}

// notifyStatus tells systemd the state in one line (STATUS=), which
// `systemctl status inspectd@<camera>` shows; sent when it changes.
func (d *Daemon) notifyStatus(st alerts.Status) {
	mqtt := "MQTT connected"
	if !d.pub.Connected() {
		mqtt = "MQTT down"
	}
	line := fmt.Sprintf("%s: %.1f inspections/s, model %s, threshold %.4g (%s), %s, spool %d",
		st.State, st.InspectionsPerSec, st.ModelID, st.Threshold, st.ThresholdSource, mqtt, st.SpoolDepth)
	if st.LastError != "" {
		line += "; " + st.LastError
	}
	line = strings.ReplaceAll(line, "\n", " ")
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	if line == d.lastNotify {
		return
	}
	d.lastNotify = line
	sdaemon.SdNotify(false, "STATUS="+line)
}

// HTTPAddr is where /metrics and /healthz listen (empty before Run or when off).
func (d *Daemon) HTTPAddr() string {
	if a := d.httpAddr.Load(); a != nil {
		return *a
	}
	return ""
}

// Inspected counts inspections since start.
func (d *Daemon) Inspected() uint64 { return d.inspected.Load() }

func (d *Daemon) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.met.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		st := d.Status()
		// Healthy while the loop is alive; a camera or broker outage shows in
		// the body (degraded) but is not a reason to restart the service.
		code := http.StatusOK
		if time.Since(time.Unix(0, d.beat.Load())) > 30*time.Second {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(st)
	})
	return mux
}
