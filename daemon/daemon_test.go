package daemon_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/alerts"
	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon"
	"github.com/inspectd/inspectd/engine"
	"github.com/inspectd/inspectd/engine/tiny"
	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/internal/cli"
	"github.com/inspectd/inspectd/internal/options"
	"github.com/inspectd/inspectd/internal/testenv"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/synth"
)

// A re-executed test binary runs the real command line, so the kill and
// SIGTERM tests see a separate daemon process.
func TestMain(m *testing.M) {
	if os.Getenv("INSPECTD_TEST_RUN_DAEMON") == "1" {
		os.Exit(cli.Main([]string{"run"}, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

const partSize = 96

// fixture calibrates a small model on the tiny backbone (fast, no
// pretrained weights needed): the daemon's behaviour, not accuracy, is tested.
type fixture struct {
	dir, model, backbone, ortLib string
	broker                       *testenv.Mosquitto
	method                       model.Method // "": the Gaussian baseline
}

func newFixture(t *testing.T, seed int64) *fixture {
	t.Helper()
	return newFixtureFor(t, seed, "")
}

// newFixtureFor calibrates the fixture's model with the given method.
func newFixtureFor(t *testing.T, seed int64, method model.Method) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), ortLib: testenv.RequireORT(t), method: method}
	f.broker = testenv.StartMosquitto(t)
	f.backbone = filepath.Join(f.dir, "tiny.onnx")
	if err := tiny.WriteFile(f.backbone, 3); err != nil {
		t.Fatal(err)
	}
	t.Setenv("INSPECTD_BACKBONE", f.backbone)
	t.Setenv("INSPECTD_ORT_LIB", f.ortLib)
	f.model = filepath.Join(f.dir, "model.zip")
	f.calibrate(t, f.model, seed)
	return f
}

func (f *fixture) calibrate(t *testing.T, path string, seed int64) string {
	t.Helper()
	return f.calibrateROI(t, path, seed, "")
}

// calibrateROI calibrates on partSize parts and records roi ("x,y,w,h" or
// empty), which the daemon crops from every frame.
func (f *fixture) calibrateROI(t *testing.T, path string, seed int64, roi string) string {
	t.Helper()
	rc, err := config.LoadRuntime()
	if err != nil {
		t.Fatal(err)
	}
	cfg := calibration.Defaults()
	cfg.Features = features.Config{Taps: []string{tiny.Tap1, tiny.Tap2}, Scales: []int{64, 32}, Mean: features.ImageNetMean, Std: features.ImageNetStd}
	cfg.Method, cfg.TrainViews, cfg.TestViews, cfg.Folds, cfg.Seed = model.Gaussian, 2, 2, 2, seed
	if f.method != "" {
		fc := cfg.Features
		cfg = calibration.DefaultsFor(f.method)
		cfg.Features, cfg.Features.Scales, cfg.Choose, cfg.Seed = fc, []int{64}, nil, seed
	}
	cfg.ROI = roi
	rt, err := engine.Open(options.Engine(rc, cfg.Features.Taps))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	ex, err := features.New(rt, cfg.Features, 8)
	if err != nil {
		t.Fatal(err)
	}
	var imgs []gocv.Mat
	var names []string
	for i := 0; i < calibration.MinImages; i++ {
		imgs = append(imgs, synth.Good(seed*100+int64(i), partSize))
		names = append(names, fmt.Sprint(i))
	}
	defer func() {
		for _, m := range imgs {
			m.Close()
		}
	}()
	res, err := calibration.Calibrate(context.Background(), ex, f.backbone, imgs, names, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := model.Save(path, res.Manifest, res.Tensors); err != nil {
		t.Fatal(err)
	}
	m, _ := model.Load(path)
	return m.Manifest.ID
}

func (f *fixture) config(t *testing.T, source string) config.Daemon {
	t.Helper()
	t.Setenv("INSPECTD_SOURCE", source)
	t.Setenv("INSPECTD_MODEL", f.model)
	t.Setenv("INSPECTD_MQTT_BROKER", f.broker.URL())
	t.Setenv("INSPECTD_SPOOL_DIR", filepath.Join(f.dir, "spool"))
	t.Setenv("INSPECTD_HTTP_ADDR", "127.0.0.1:0")
	t.Setenv("INSPECTD_STATUS_INTERVAL", "200ms")
	t.Setenv("INSPECTD_HEATMAP_ALL", "true")
	t.Setenv("INSPECTD_STALL_TIMEOUT", "1s")
	cfg, err := config.LoadDaemon()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// dropParts writes n synthetic part images into a hot folder, every second one
// defective, atomically (as camera software should).
func dropParts(t *testing.T, dir string, first, n int) []string {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	var names []string
	for i := first; i < first+n; i++ {
		img := synth.Good(int64(1000+i), partSize)
		if i%2 == 1 {
			d, _, err := synth.Defect(img, synth.Kinds[i%len(synth.Kinds)], int64(i))
			if err != nil {
				t.Fatal(err)
			}
			img.Close()
			img = d
		}
		name := fmt.Sprintf("part%03d.png", i)
		dropImage(t, filepath.Join(dir, name), img)
		names = append(names, name)
	}
	return names
}

// dropImage writes img as a PNG atomically (as camera software should) and
// closes it.
func dropImage(t *testing.T, path string, img gocv.Mat) {
	t.Helper()
	png, err := imageops.EncodePNG(img)
	img.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := imageops.WriteFileAtomic(path, png); err != nil {
		t.Fatal(err)
	}
}

// subscriber records what the PLC side would receive.
type subscriber struct {
	mu       sync.Mutex
	events   []alerts.Event
	heatmaps map[string][]byte
	avail    []string
	status   []alerts.Status
	client   paho.Client
}

func subscribe(t *testing.T, url, camera string) *subscriber {
	t.Helper()
	s := &subscriber{heatmaps: map[string][]byte{}}
	topics := alerts.TopicsFor("inspectd", camera)
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("sub-%d", time.Now().UnixNano())).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).
		SetCleanSession(false).SetMaxReconnectInterval(500 * time.Millisecond)
	opts.SetOnConnectHandler(func(c paho.Client) {
		c.Subscribe(topics.Event, 1, func(_ paho.Client, m paho.Message) {
			var ev alerts.Event
			if err := json.Unmarshal(m.Payload(), &ev); err != nil {
				t.Errorf("event is not JSON: %v: %s", err, m.Payload())
				return
			}
			s.mu.Lock()
			s.events = append(s.events, ev)
			s.mu.Unlock()
		})
		c.Subscribe(topics.HeatmapBase+"/+", 1, func(_ paho.Client, m paho.Message) {
			s.mu.Lock()
			s.heatmaps[m.Topic()] = append([]byte(nil), m.Payload()...)
			s.mu.Unlock()
		})
		c.Subscribe(topics.Availability, 1, func(_ paho.Client, m paho.Message) {
			s.mu.Lock()
			s.avail = append(s.avail, string(m.Payload()))
			s.mu.Unlock()
		})
		c.Subscribe(topics.Status, 1, func(_ paho.Client, m paho.Message) {
			var st alerts.Status
			if json.Unmarshal(m.Payload(), &st) == nil {
				s.mu.Lock()
				s.status = append(s.status, st)
				s.mu.Unlock()
			}
		})
	})
	s.client = paho.NewClient(opts)
	if tok := s.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber: %v", tok.Error())
	}
	t.Cleanup(func() { s.client.Disconnect(100) })
	time.Sleep(200 * time.Millisecond) // subscriptions in place
	return s
}

// uniqueEvents drops duplicates by id, as subscribers are told to.
func (s *subscriber) uniqueEvents() []alerts.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var out []alerts.Event
	for _, e := range s.events {
		if !seen[e.ID] {
			seen[e.ID] = true
			out = append(out, e)
		}
	}
	return out
}

func (s *subscriber) waitEvents(t *testing.T, n int, timeout time.Duration) []alerts.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ev := s.uniqueEvents()
		if len(ev) >= n {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events within %v; want %d", len(ev), timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *subscriber) lastAvail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.avail) == 0 {
		return ""
	}
	return s.avail[len(s.avail)-1]
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startDaemon(t *testing.T, cfg config.Daemon) (*daemon.Daemon, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.New(ctx, cfg, quietLog(), "test")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("daemon did not stop within 15 s")
		}
	}
	t.Cleanup(stop)
	return d, stop
}

func TestEventsAndHeatmapsAsDocumented(t *testing.T) {
	f := newFixture(t, 1)
	hot := filepath.Join(f.dir, "hot")
	names := dropParts(t, hot, 0, 4)
	sub := subscribe(t, f.broker.URL(), "cam0")
	cfg := f.config(t, "dir:"+hot)
	_, stop := startDaemon(t, cfg)
	events := sub.waitEvents(t, len(names), 60*time.Second)
	man, _ := model.Load(f.model)
	parts := map[string]bool{}
	for _, ev := range events {
		parts[ev.PartID] = true
		if ev.Schema != alerts.EventSchema || ev.Camera != "cam0" || ev.ModelID != man.Manifest.ID || ev.ID == "" || ev.Time.IsZero() {
			t.Errorf("event %+v", ev)
		}
		if ev.Threshold != man.Manifest.Threshold.Value || ev.Score <= 0 || ev.LatencyMS <= 0 {
			t.Errorf("event numbers %+v", ev)
		}
		if (ev.Verdict == alerts.VerdictDefect) != (ev.Score > ev.Threshold) {
			t.Errorf("verdict %s for score %g, threshold %g", ev.Verdict, ev.Score, ev.Threshold)
		}
		want := "inspectd/cam0/heatmap/" + ev.ID
		if ev.HeatmapTopic != want {
			t.Errorf("heatmap topic %q, want %q", ev.HeatmapTopic, want)
		}
		sub.mu.Lock()
		jpg := sub.heatmaps[ev.HeatmapTopic]
		sub.mu.Unlock()
		sum := sha256.Sum256(jpg)
		if len(jpg) != ev.HeatmapBytes || hex.EncodeToString(sum[:]) != ev.HeatmapSHA256 {
			t.Errorf("heatmap of %s: %d bytes (event says %d), sha mismatch", ev.ID, len(jpg), ev.HeatmapBytes)
		}
		if img, err := imageops.Decode(jpg); err != nil {
			t.Errorf("heatmap is not an image: %v", err)
		} else {
			if img.Rows() != partSize || img.Cols() != partSize {
				t.Errorf("heatmap %dx%d, want the part's %d", img.Cols(), img.Rows(), partSize)
			}
			img.Close()
		}
	}
	for _, n := range names {
		if !parts[n] {
			t.Errorf("no event for part %s", n)
		}
		if _, err := os.Stat(filepath.Join(hot, "done", n)); err != nil {
			t.Errorf("%s not moved to done/: %v", n, err)
		}
	}
	if sub.lastAvail() != "online" {
		t.Errorf("availability %q, want online", sub.lastAvail())
	}
	sub.mu.Lock()
	var st alerts.Status
	if len(sub.status) > 0 {
		st = sub.status[len(sub.status)-1]
	}
	sub.mu.Unlock()
	if st.Schema != alerts.StatusSchema || st.ModelID != man.Manifest.ID || !strings.Contains(st.Provider, "onnxruntime") {
		t.Errorf("status %+v", st)
	}
	stop()
	time.Sleep(300 * time.Millisecond)
	if sub.lastAvail() != "offline" {
		t.Errorf("availability after stop %q, want offline", sub.lastAvail())
	}
}

// Broker down mid-run, daemon restarted while it is down: every event arrives
// once the broker is back.
func TestNoEventLostAcrossBrokerOutageAndRestart(t *testing.T) {
	f := newFixture(t, 2)
	hot := filepath.Join(f.dir, "hot")
	sub := subscribe(t, f.broker.URL(), "cam0")
	cfg := f.config(t, "dir:"+hot)
	d, stop := startDaemon(t, cfg)
	all := dropParts(t, hot, 0, 2)
	sub.waitEvents(t, 2, 60*time.Second)

	f.broker.Stop()
	all = append(all, dropParts(t, hot, 2, 3)...)
	for deadline := time.Now().Add(60 * time.Second); d.Inspected() < 5; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("inspected %d of 5 while the broker was down", d.Inspected())
		}
	}
	stop() // restart the daemon while the broker is still down
	d2, _ := startDaemon(t, cfg)
	all = append(all, dropParts(t, hot, 5, 2)...)
	for deadline := time.Now().Add(60 * time.Second); d2.Inspected() < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("second daemon inspected %d of 2", d2.Inspected())
		}
	}
	f.broker.Start()
	events := sub.waitEvents(t, len(all), 60*time.Second)
	got := map[string]int{}
	for _, ev := range events {
		got[ev.PartID]++
	}
	for _, n := range all {
		if got[n] != 1 {
			t.Errorf("part %s: %d unique events, want 1", n, got[n])
		}
	}
}

func TestTriggerRoundTrip(t *testing.T) {
	f := newFixture(t, 3)
	video := filepath.Join(f.dir, "line.avi")
	if err := synth.WriteVideo(video, 10, 10, partSize, 3, 1); err != nil {
		t.Fatal(err)
	}
	sub := subscribe(t, f.broker.URL(), "cam0")
	t.Setenv("INSPECTD_TRIGGER", "mqtt")
	t.Setenv("INSPECTD_SOURCE_LOOP", "true")
	cfg := f.config(t, video)
	startDaemon(t, cfg)
	time.Sleep(500 * time.Millisecond)
	if n := len(sub.uniqueEvents()); n != 0 {
		t.Fatalf("%d events before any trigger", n)
	}
	for _, id := range []string{"A-17", "A-18"} {
		sub.client.Publish("inspectd/cam0/trigger", 1, false, id).Wait()
		time.Sleep(300 * time.Millisecond)
	}
	events := sub.waitEvents(t, 2, 30*time.Second)
	if events[0].PartID != "A-17" || events[1].PartID != "A-18" {
		t.Errorf("part ids %q, %q; want A-17, A-18", events[0].PartID, events[1].PartID)
	}
}

// SIGHUP with a corrupt model keeps the old one; with a good one, swaps.
func TestSIGHUPReload(t *testing.T) {
	f := newFixture(t, 4)
	hot := filepath.Join(f.dir, "hot")
	os.MkdirAll(hot, 0o755)
	sub := subscribe(t, f.broker.URL(), "cam0")
	cfg := f.config(t, "dir:"+hot)
	// SIGHUP right after New: the handler is installed before anything slow
	// (on main it was installed in Run, and this killed the test binary).
	d, _ := startDaemon(t, cfg)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	oldID := d.Status().ModelID
	good, _ := os.ReadFile(f.model)
	if err := os.WriteFile(f.model, good[:len(good)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.Status().LastError, "reload refused") {
		if time.Now().After(deadline) {
			t.Fatalf("status after a corrupt model: %+v", d.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Hostile manifests with a valid checksum (it covers the weights): each
	// reload is refused with its reason and the old model keeps running.
	// On main these panicked in loading or at the first heatmap.
	for _, c := range []struct {
		name   string
		change func(m map[string]any)
		want   string
	}{
		{"offset 2^63-1", func(m map[string]any) { m["tensors"].([]any)[0].(map[string]any)["offset"] = int64(1<<63 - 1) }, "lies outside"},
		{"shape [2^62,2]", func(m map[string]any) { m["tensors"].([]any)[0].(map[string]any)["shape"] = []any{int64(1 << 62), 2} }, "holds more than"},
		{"test transforms 2^50", func(m map[string]any) { m["test_transforms"] = int64(1 << 50) }, "test_transforms"},
		{"heatmap sigma 1e9", func(m map[string]any) { m["heatmap_sigma"] = 1e9 }, "heatmap_sigma"},
		{"flow hidden 1e12", func(m map[string]any) {
			m["method"], m["method_config"] = "flow", map[string]any{"Dim": 10, "Blocks": 8, "Hidden": 1e12, "Depth": 1}
		}, "Hidden"},
	} {
		writeChangedManifest(t, good, f.model, c.change)
		err := d.Reload()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: reload error %v; want %q", c.name, err, c.want)
		}
		if st := d.Status(); st.ModelID != oldID || !strings.Contains(st.LastError, "reload refused") {
			t.Errorf("%s: status %+v; want the old model %s and the refusal", c.name, st, oldID)
		}
	}
	dropParts(t, hot, 0, 1)
	if ev := sub.waitEvents(t, 1, 30*time.Second); ev[0].ModelID != oldID {
		t.Errorf("event from model %s after refused reload; want the old %s", ev[0].ModelID, oldID)
	}
	newID := f.calibrate(t, f.model, 5)
	if newID == oldID {
		t.Fatal("recalibration gave the same model id")
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	for deadline := time.Now().Add(20 * time.Second); d.Status().ModelID != newID; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("model %s after reload, want %s", d.Status().ModelID, newID)
		}
	}
	dropParts(t, hot, 1, 1)
	if ev := sub.waitEvents(t, 2, 30*time.Second); ev[1].ModelID != newID {
		t.Errorf("event from model %s after reload; want %s", ev[1].ModelID, newID)
	}
}

// writeChangedManifest writes the model zip good to path with its manifest
// changed (weights and their checksum untouched).
func writeChangedManifest(t *testing.T, good []byte, path string, change func(map[string]any)) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, zf := range zr.File {
		r, _ := zf.Open()
		b, _ := io.ReadAll(r)
		r.Close()
		if zf.Name == "manifest.json" {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			change(m)
			b, _ = json.Marshal(m)
		}
		w, _ := zw.Create(zf.Name)
		w.Write(b)
	}
	zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The daemon as a separate process: SIGKILL leaves the last will "offline";
// SIGTERM exits cleanly within 10 s.
func TestProcessKillAndTerm(t *testing.T) {
	f := newFixture(t, 6)
	video := filepath.Join(f.dir, "line.avi")
	if err := synth.WriteVideo(video, 20, 10, partSize, 3, 1); err != nil {
		t.Fatal(err)
	}
	f.config(t, video)
	t.Setenv("INSPECTD_SOURCE_LOOP", "true")
	t.Setenv("INSPECTD_MQTT_KEEPALIVE", "1s")
	sub := subscribe(t, f.broker.URL(), "cam0")
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "INSPECTD_TEST_RUN_DAEMON=1")
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); sub.lastAvail() != "online"; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("daemon process never came online")
			}
		}
		sub.waitEvents(t, 1, 30*time.Second)
		return cmd
	}

	cmd := start()
	cmd.Process.Kill()
	cmd.Wait()
	// The broker sends the will after 1.5 keep-alives without the client.
	for deadline := time.Now().Add(40 * time.Second); sub.lastAvail() != "offline"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no last will after SIGKILL")
		}
	}

	cmd = start()
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if took := time.Since(t0); took > 10*time.Second {
		t.Errorf("SIGTERM took %v; want under 10 s", took)
	}
	if err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if sub.lastAvail() != "offline" {
		t.Errorf("availability after SIGTERM %q", sub.lastAvail())
	}
}

// A camera file that disappears makes the daemon degraded, not dead; it
// recovers when the file is back.
func TestCameraFileDeleted(t *testing.T) {
	f := newFixture(t, 7)
	video := filepath.Join(f.dir, "line.avi")
	if err := synth.WriteVideo(video, 10, 10, partSize, 3, 1); err != nil {
		t.Fatal(err)
	}
	keep, _ := os.ReadFile(video)
	t.Setenv("INSPECTD_SOURCE_LOOP", "true")
	cfg := f.config(t, video)
	d, _ := startDaemon(t, cfg)
	for deadline := time.Now().Add(30 * time.Second); d.Inspected() == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no inspection")
		}
	}
	os.Remove(video)
	for deadline := time.Now().Add(30 * time.Second); d.Status().State != alerts.StateDegraded; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("status with the camera gone: %+v", d.Status())
		}
	}
	os.WriteFile(video, keep, 0o644)
	n := d.Inspected()
	for deadline := time.Now().Add(60 * time.Second); d.Inspected() <= n+2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no recovery: %+v", d.Status())
		}
	}
	if st := d.Status().State; st != alerts.StateRunning {
		t.Errorf("state after recovery %q", st)
	}
}

// A video file without loop ends: every frame is inspected, the status says
// "ended", and the daemon stays up (a service must not exit on its camera).
func TestCameraFileEnds(t *testing.T) {
	f := newFixture(t, 10)
	video := filepath.Join(f.dir, "short.avi")
	const frames = 6
	if err := synth.WriteVideo(video, frames, 10, partSize, 3, 1); err != nil {
		t.Fatal(err)
	}
	t.Setenv("INSPECTD_SOURCE_PACE", "false")
	cfg := f.config(t, video)
	d, stop := startDaemon(t, cfg)
	for deadline := time.Now().Add(30 * time.Second); d.Status().State != "ended"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("status %+v after the video ended", d.Status())
		}
	}
	if n := d.Inspected(); n != frames {
		t.Errorf("%d inspections for %d frames", n, frames)
	}
	time.Sleep(1500 * time.Millisecond)
	if st := d.Status().State; st != "ended" {
		t.Errorf("state %q a while after the end; want it to stay up in ended", st)
	}
	stop()
}
