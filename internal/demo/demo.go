// Package demo runs the embedded default: the whole chain on one machine with
// nothing configured. A sample camera video of synthetic parts (some with
// defects) is the camera; its good frames calibrate a model; an embedded MQTT
// broker stands in for the plant's; the daemon inspects the video and a
// subscriber prints the events and saves the heatmaps; a summary closes it.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/alerts"
	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon"
	"github.com/inspectd/inspectd/engine"
	"github.com/inspectd/inspectd/evalstats"
	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/internal/options"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/sparkplug"
	"github.com/inspectd/inspectd/synth"
)

// Options of a demo run.
type Options struct {
	Video       string // sample camera video
	DefectEvery int    // the video's recipe: every N-th part is defective (synth.PartKind)
	Calibrate   int    // good frames used for calibration
	Out         string // model, spool, heatmaps
	Version     string
	Calib       calibration.Config
	// Sparkplug also runs the daemon as a Sparkplug B edge node and prints
	// that stream as a SCADA host would decode it.
	Sparkplug bool
}

// Summary of a demo run.
type Summary struct {
	Events, Defects, TruePositives, FalsePositives, Missed int
	Heatmaps                                               int
	InspectionsPerSec                                      float64
	LatencyMedianMS, LatencyP99MS                          float64
}

// Run executes the demo and prints events as they arrive.
func Run(ctx context.Context, opt Options, w io.Writer, log *slog.Logger) (Summary, error) {
	var sum Summary
	if err := os.MkdirAll(opt.Out, 0o755); err != nil {
		return sum, err
	}
	rc, err := config.LoadRuntime()
	if err != nil {
		return sum, err
	}
	// 1. Calibrate on good frames of the video.
	frames, err := readFrames(opt.Video)
	if err != nil {
		return sum, err
	}
	defer func() {
		for _, f := range frames {
			f.Close()
		}
	}()
	var good []gocv.Mat
	var names []string
	for i, f := range frames {
		if _, bad := synth.PartKind(i, opt.DefectEvery); !bad && len(good) < opt.Calibrate {
			good = append(good, f)
			names = append(names, fmt.Sprintf("%s#%d", opt.Video, i))
		}
	}
	fmt.Fprintf(w, "demo: calibrating on %d good frames of %s\n", len(good), opt.Video)
	rc.Backbone = rc.BackboneFor(opt.Calib.Backbone, opt.Calib.Features.Taps)
	rt, err := engine.Open(options.Engine(rc, opt.Calib.Features.Taps))
	if err != nil {
		return sum, err
	}
	ex, err := features.New(rt, opt.Calib.Features, rc.MaxBatch)
	if err != nil {
		rt.Close()
		return sum, err
	}
	res, err := calibration.Calibrate(ctx, ex, rc.Backbone, good, names, opt.Calib, nil)
	rt.Close()
	if err != nil {
		return sum, err
	}
	modelPath := filepath.Join(opt.Out, "model.zip")
	if err := model.Save(modelPath, res.Manifest, res.Tensors); err != nil {
		return sum, err
	}
	fmt.Fprintf(w, "demo: model %s, threshold %.4g, calibrated in %.0f s\n", modelPath, res.Manifest.Threshold.Value, res.Manifest.Training.Seconds)

	// 2. An embedded broker on a free loopback port.
	port, err := freePort()
	if err != nil {
		return sum, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	broker := mochi.New(&mochi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := broker.AddHook(new(auth.AllowHook), nil); err != nil {
		return sum, fmt.Errorf("demo broker: %w", err)
	}
	if err := broker.AddListener(listeners.NewTCP(listeners.Config{ID: "demo", Address: addr})); err != nil {
		return sum, err
	}
	defer broker.Close()
	// Serve starts the listeners and returns.
	if err := broker.Serve(); err != nil {
		return sum, fmt.Errorf("demo broker: %w", err)
	}
	url := "tcp://" + addr

	// 3. A subscriber, as the PLC/SCADA layer would be.
	heatDir := filepath.Join(opt.Out, "heatmaps")
	if err := os.MkdirAll(heatDir, 0o755); err != nil {
		return sum, fmt.Errorf("demo heatmap folder: %w", err)
	}
	var mu sync.Mutex
	var events []alerts.Event
	topics := alerts.TopicsFor("inspectd", "demo")
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("demo-subscriber"))
	if t := sub.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return sum, fmt.Errorf("demo subscriber: %v", t.Error())
	}
	defer sub.Disconnect(100)
	if err := subscribe(sub, topics.Event, func(_ paho.Client, m paho.Message) {
		var ev alerts.Event
		if json.Unmarshal(m.Payload(), &ev) != nil {
			return
		}
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
		heat := ""
		if ev.HeatmapTopic != "" {
			heat = "  heatmap " + filepath.Join(heatDir, ev.ID+".jpg")
		}
		fmt.Fprintf(w, "event %3d  %-6s  score %8.4g  threshold %.4g  %6.0f ms%s\n", ev.Seq, ev.Verdict, ev.Score, ev.Threshold, ev.LatencyMS, heat)
	}); err != nil {
		return sum, err
	}
	if err := subscribe(sub, topics.HeatmapBase+"/+", func(_ paho.Client, m paho.Message) {
		id := m.Topic()[strings.LastIndex(m.Topic(), "/")+1:]
		// A heatmap that cannot be saved costs the picture, not the demo.
		if err := imageops.WriteFileAtomic(filepath.Join(heatDir, id+".jpg"), m.Payload()); err != nil {
			fmt.Fprintf(w, "demo: heatmap %s not saved: %v\n", id, err)
		}
	}); err != nil {
		return sum, err
	}
	var spb *sparkplugPrinter
	if opt.Sparkplug {
		spb = newSparkplugPrinter(w)
		if err := subscribe(sub, sparkplug.Namespace+"/#", spb.handle); err != nil {
			return sum, err
		}
	}

	// 4. The daemon on the video.
	// Not paced: every frame of the video is one part, inspected in order, so
	// event seq i is frame i-1 and the summary can compare with the recipe.
	dc := config.Daemon{Runtime: rc, Camera: "demo", Source: opt.Video, SourcePace: false, Model: modelPath,
		Trigger: "continuous", MaxRate: 100, Heatmaps: true, JPEGQuality: 85, Broker: url, TopicPrefix: "inspectd",
		Events: "inspection", SpoolDir: filepath.Join(opt.Out, "spool"), SpoolMaxBytes: 64 << 20,
		StallTimeout: 10 * time.Second, StatusEvery: time.Second, KeepAlive: 30 * time.Second, LogLevel: "warn",
		// The demo's line is one fifth defects by design: said, so that the
		// reject-rate check does not call it a line in trouble.
		DefectRate: 0.25}
	if opt.Sparkplug {
		dc.Sparkplug, dc.SparkplugGroup, dc.SparkplugNode = true, "demo", "inspectd-demo"
	}
	if err := dc.Validate(); err != nil {
		return sum, err
	}
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	d, err := daemon.New(dctx, dc, log, opt.Version)
	if err != nil {
		return sum, err
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- d.Run(dctx) }()
	// The video ends when the daemon reports it; then wait for the last events.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for d.Status().State != alerts.StateEnded {
		select {
		case <-ctx.Done():
			stop()
			<-done
			return sum, ctx.Err()
		case err := <-done:
			return sum, err
		case <-tick.C:
		}
	}
	elapsed := time.Since(start)
	want := int(d.Inspected())
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		mu.Lock()
		n := len(events)
		mu.Unlock()
		if n >= want {
			break
		}
	}
	stop()
	if err := <-done; err != nil {
		return sum, err
	}
	if spb != nil {
		spb.waitFor("NDEATH", 5*time.Second) // sent by the daemon on its way out
	}

	// 5. Summary against the video's recipe.
	mu.Lock()
	defer mu.Unlock()
	var lat []float64
	for _, ev := range events {
		_, truth := synth.PartKind(int(ev.Seq)-1, opt.DefectEvery)
		isDefect := ev.Verdict == alerts.VerdictDefect
		sum.Events++
		lat = append(lat, ev.LatencyMS)
		if isDefect {
			sum.Defects++
		}
		switch {
		case truth && isDefect:
			sum.TruePositives++
		case !truth && isDefect:
			sum.FalsePositives++
		case truth && !isDefect:
			sum.Missed++
		}
		if ev.HeatmapTopic != "" {
			sum.Heatmaps++
		}
	}
	sort.Float64s(lat)
	sum.InspectionsPerSec = float64(sum.Events) / elapsed.Seconds()
	sum.LatencyMedianMS = evalstats.Median(lat)
	sum.LatencyP99MS = evalstats.Quantile(lat, 0.99)
	fmt.Fprintf(w, "\ndemo summary: %d parts inspected, %d flagged defective (%d of %d real defects caught, %d good parts rejected)\n",
		sum.Events, sum.Defects, sum.TruePositives, sum.TruePositives+sum.Missed, sum.FalsePositives)
	fmt.Fprintf(w, "  %.2f inspections/s, latency median %.0f ms, p99 %.0f ms; %d heatmaps in %s\n",
		sum.InspectionsPerSec, sum.LatencyMedianMS, sum.LatencyP99MS, sum.Heatmaps, heatDir)
	if spb != nil {
		fmt.Fprintf(w, "  sparkplug B (group demo, edge node inspectd-demo, device demo): %s\n", spb.summary())
	}
	return sum, nil
}

// subscribe subscribes the demo's client at QoS 1 and waits for the broker's
// answer, so a refused subscription fails the demo instead of emptying it.
func subscribe(c paho.Client, topic string, h paho.MessageHandler) error {
	t := c.Subscribe(topic, 1, h)
	if !t.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("demo subscriber: subscribing to %s: no answer in 10 s", topic)
	}
	if err := t.Error(); err != nil {
		return fmt.Errorf("demo subscriber: subscribing to %s: %w", topic, err)
	}
	return nil
}

func readFrames(path string) ([]gocv.Mat, error) {
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		return nil, fmt.Errorf("sample video %s: %w", path, err)
	}
	defer vc.Close()
	var out []gocv.Mat
	for {
		m := gocv.NewMat()
		if !vc.Read(&m) || m.Empty() {
			m.Close()
			break
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("sample video %s has no frames", path)
	}
	return out, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
