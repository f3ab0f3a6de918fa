package daemon_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/alerts"
	"github.com/inspectd/inspectd/internal/testenv"
)

// netCam is a real camera server on 127.0.0.1 that can be killed and brought
// back at another resolution.
type netCam interface {
	Start(width, height int)
	Stop()
}

// The daemon's source URI for each kind of camera, read from real servers.
var netCams = []struct {
	name  string
	start func(t *testing.T, w, h int) (netCam, string)
}{
	{"rtsp h264", func(t *testing.T, w, h int) (netCam, string) {
		s := testenv.StartRTSP(t, "h264", w, h, 15)
		return s, s.URL()
	}},
	{"rtsp mjpeg", func(t *testing.T, w, h int) (netCam, string) {
		s := testenv.StartRTSP(t, "mjpeg", w, h, 15)
		return s, s.URL()
	}},
	{"http mjpeg", func(t *testing.T, w, h int) (netCam, string) {
		s := testenv.StartMJPEG(t, w, h, 15)
		return s, s.URL()
	}},
	{"gst rtsp h264", func(t *testing.T, w, h int) (netCam, string) {
		testenv.RequireGStreamer(t, "rtspsrc", "rtph264depay", "avdec_h264", "videoconvert", "appsink")
		s := testenv.StartRTSP(t, "h264", w, h, 15)
		return s, "gst:rtspsrc location=" + s.URL() + " latency=0 ! rtph264depay ! avdec_h264 ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1"
	}},
	{"gst http mjpeg", func(t *testing.T, w, h int) (netCam, string) {
		testenv.RequireGStreamer(t, "souphttpsrc", "multipartdemux", "jpegdec", "videoconvert", "appsink")
		s := testenv.StartMJPEG(t, w, h, 15)
		return s, "gst:souphttpsrc location=" + s.URL() + " is-live=true ! multipartdemux ! jpegdec ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1"
	}},
}

// eventFor waits for the event of part id.
func (s *subscriber) eventFor(t *testing.T, id string, timeout time.Duration) alerts.Event {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		for _, ev := range s.uniqueEvents() {
			if ev.PartID == id {
				return ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event for part %s within %v", id, timeout)
		}
	}
}

func (s *subscriber) lastStatus() alerts.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.status) == 0 {
		return alerts.Status{}
	}
	return s.status[len(s.status)-1]
}

// triggerUntil sends triggers one at a time (each gets exactly one event)
// until an event satisfies want, and returns it with how many were sent.
func triggerUntil(t *testing.T, sub *subscriber, camera, prefix string, timeout time.Duration, want func(alerts.Event) bool) (alerts.Event, int) {
	t.Helper()
	var last alerts.Event
	deadline := time.Now().Add(timeout)
	for n := 1; time.Now().Before(deadline); n++ {
		id := fmt.Sprintf("%s-%d", prefix, n)
		sub.client.Publish(fmt.Sprintf("inspectd/%s/trigger", camera), 1, false, id).Wait()
		last = sub.eventFor(t, id, 15*time.Second)
		if want(last) {
			return last, n
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: no wanted event within %v; last %+v", prefix, timeout, last)
	return last, 0
}

func inspected(ev alerts.Event) bool {
	return ev.Verdict == alerts.VerdictOK || ev.Verdict == alerts.VerdictDefect
}

// TestNetworkCameraEndToEnd runs the daemon on each kind of network camera,
// served for real on 127.0.0.1, with MQTT triggers, and checks what the PLC
// side receives: inspections of frames captured after their trigger; with
// the camera killed, degraded status and error events; the camera back at a
// resolution the model's ROI does not fit, a clear error; back at its
// resolution, inspections again.
func TestNetworkCameraEndToEnd(t *testing.T) {
	f := newFixture(t, 21)
	// The model crops a 96x96 part from the top-left of each 160x120 frame.
	f.calibrateROI(t, f.model, 21, fmt.Sprintf("0,0,%d,%d", partSize, partSize))
	for i, c := range netCams {
		t.Run(c.name, func(t *testing.T) {
			srv, uri := c.start(t, 160, 120)
			cameraEndToEnd(t, f, fmt.Sprintf("net%d", i), uri, srv, true)
		})
	}
}

// fixedSizeCam is a camera whose resolution the test does not change.
type fixedSizeCam struct{ *testenv.FakeGigE }

func (c fixedSizeCam) Start(int, int) { c.FakeGigE.Start() }

// TestGigECameraEndToEnd: the same, for Aravis's GigE Vision simulator read
// through the gige: kind (320x240 Mono8, set by the URI).
func TestGigECameraEndToEnd(t *testing.T) {
	if testenv.RunWithoutNetRaw(t) {
		return
	}
	f := newFixture(t, 22)
	f.calibrateROI(t, f.model, 22, fmt.Sprintf("0,0,%d,%d", partSize, partSize))
	cam := testenv.StartFakeGigE(t, "INSPD2")
	cameraEndToEnd(t, f, "gige0", "gige:"+cam.Address()+"?pixel-format=Mono8&width=320&height=240&features=AcquisitionFrameRate=15", fixedSizeCam{cam}, false)
}

// cameraEndToEnd runs the daemon on uri with MQTT triggers against the
// camera srv, already streaming at 160x120 (or its fixed size).
func cameraEndToEnd(t *testing.T, f *fixture, camera, uri string, srv netCam, resizable bool) {
	// The cameras' test patterns are nothing like the good parts: every part
	// is rejected, which the reject-rate check would rightly call degraded.
	// These tests are about the camera's states, so the line is told it
	// makes that many defects.
	t.Setenv("INSPECTD_DEFECT_RATE", "0.9")
	t.Setenv("INSPECTD_TRIGGER", "mqtt")
	t.Setenv("INSPECTD_CAMERA", camera)
	sub := subscribe(t, f.broker.URL(), camera)
	cfg := f.config(t, uri)
	cfg.StallTimeout = 5 * time.Second // beyond FFmpeg's probing of H.264
	cfg.SpoolDir = filepath.Join(f.dir, "spool-"+camera)
	startDaemon(t, cfg)
	for deadline := time.Now().Add(10 * time.Second); sub.lastAvail() != "online"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("daemon never online")
		}
	}
	// The camera is up once a trigger is inspected.
	triggerUntil(t, sub, camera, "warm", 30*time.Second, inspected)
	for n := 0; n < 3; n++ {
		ev := sub.eventFor(t, sendTrigger(sub, camera, fmt.Sprintf("P-%d", n)), 15*time.Second)
		if !inspected(ev) {
			t.Fatalf("part P-%d: %s %q; want an inspection", n, ev.Verdict, ev.Reason)
		}
		// A frame taken before the trigger is never inspected.
		if ev.CapturedAt.Before(ev.TriggeredAt) {
			t.Errorf("part P-%d: frame captured at %v, before its trigger at %v", n, ev.CapturedAt, ev.TriggeredAt)
		}
	}

	srv.Stop()
	down := time.Now()
	degradedAfter := awaitDegraded(t, sub, down)
	if ev := sub.eventFor(t, sendTrigger(sub, camera, "down"), 15*time.Second); ev.Verdict != alerts.VerdictError {
		t.Errorf("trigger with the camera down: %s %q; want an error event", ev.Verdict, ev.Reason)
	}

	if resizable {
		// Reconfigured smaller than the ROI: an error that says so.
		srv.Start(64, 48)
		ev, _ := triggerUntil(t, sub, camera, "small", 30*time.Second, func(ev alerts.Event) bool {
			return ev.Verdict != alerts.VerdictError || strings.Contains(ev.Reason, "outside")
		})
		if ev.Verdict != alerts.VerdictError || !strings.Contains(ev.Reason, "outside the 64x48 image") {
			t.Errorf("frame smaller than the ROI: %s %q; want an error naming the 64x48 frame", ev.Verdict, ev.Reason)
		}
		srv.Stop()
	}

	up := time.Now()
	srv.Start(160, 120)
	_, sent := triggerUntil(t, sub, camera, "back", 30*time.Second, inspected)
	t.Logf("status degraded %v after the camera died; inspections again %v after it came back (%d triggers)",
		degradedAfter.Round(10*time.Millisecond), time.Since(up).Round(10*time.Millisecond), sent)
	for deadline := time.Now().Add(10 * time.Second); sub.lastStatus().State != alerts.StateRunning; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("status %+v after recovery; want running", sub.lastStatus())
		}
	}
}

func sendTrigger(sub *subscriber, camera, id string) string {
	sub.client.Publish(fmt.Sprintf("inspectd/%s/trigger", camera), 1, false, id).Wait()
	return id
}

// TestGigESoftwareTriggerEndToEnd: the daemon owns Aravis's simulator
// through gige:...?trigger=software. Each MQTT trigger fires the camera once
// and its event carries that frame (captured after the trigger); the camera
// killed: degraded and error events; the camera back reconfigured to 64x48,
// smaller than the model's 96x96 ROI: error events naming the 64x48 frame;
// back at its default 512x512: inspections and running again.
func TestGigESoftwareTriggerEndToEnd(t *testing.T) {
	testenv.RequireAravis(t)
	f := newFixture(t, 23)
	f.calibrateROI(t, f.model, 23, fmt.Sprintf("0,0,%d,%d", partSize, partSize))
	cam := testenv.StartFakeGigE(t, "INSPD5")
	const camera = "gige1"
	// The cameras' test patterns are nothing like the good parts: every part
	// is rejected, which the reject-rate check would rightly call degraded.
	// These tests are about the camera's states, so the line is told it
	// makes that many defects.
	t.Setenv("INSPECTD_DEFECT_RATE", "0.9")
	t.Setenv("INSPECTD_TRIGGER", "mqtt")
	t.Setenv("INSPECTD_CAMERA", camera)
	sub := subscribe(t, f.broker.URL(), camera)
	// No width or height in the URI: a reopened camera keeps the size it
	// was given meanwhile.
	cfg := f.config(t, "gige:"+cam.Address()+"?trigger=software")
	cfg.StallTimeout = 5 * time.Second
	cfg.SpoolDir = filepath.Join(f.dir, "spool-"+camera)
	d, _ := startDaemon(t, cfg)
	for deadline := time.Now().Add(10 * time.Second); sub.lastAvail() != "online"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("daemon never online")
		}
	}
	// The first frame of a connection at 512x512 can arrive incomplete
	// over loopback: its trigger gets an error event, the next is inspected.
	triggerUntil(t, sub, camera, "warm", 30*time.Second, inspected)
	const parts = 10
	lat := make([]time.Duration, 0, parts)
	for n := 0; n < parts; n++ {
		ev := sub.eventFor(t, sendTrigger(sub, camera, fmt.Sprintf("S-%d", n)), 15*time.Second)
		if !inspected(ev) {
			t.Fatalf("part S-%d: %s %q; want an inspection", n, ev.Verdict, ev.Reason)
		}
		if ev.CapturedAt.Before(ev.TriggeredAt) || ev.CapturedAt.Sub(ev.TriggeredAt) > time.Second {
			t.Errorf("part S-%d: frame captured at %v, trigger at %v; want the frame the trigger took", n, ev.CapturedAt, ev.TriggeredAt)
		}
		lat = append(lat, ev.CapturedAt.Sub(ev.TriggeredAt))
	}
	slices.Sort(lat)
	t.Logf("MQTT trigger received to frame captured over %d parts: median %v, min %v, max %v",
		parts, lat[parts/2].Round(100*time.Microsecond), lat[0].Round(100*time.Microsecond), lat[parts-1].Round(100*time.Microsecond))

	cam.Stop()
	down := time.Now()
	degradedAfter := awaitDegraded(t, sub, down)
	if ev := sub.eventFor(t, sendTrigger(sub, camera, "down"), 15*time.Second); ev.Verdict != alerts.VerdictError || !strings.Contains(ev.Reason, "camera") {
		t.Errorf("trigger with the camera down: %s %q; want an error event about the camera", ev.Verdict, ev.Reason)
	}

	// GigE Vision lets one controller write: the camera is reconfigured
	// while the daemon is away, between two reopen attempts. Three failed
	// attempts after the outage was seen, the next is at least 2 s away
	// (backoff 0.5 s doubling).
	r0 := scrape(t, d, "inspectd_capture_reconnects_total")
	waitFor(t, "three failed reopens", 60*time.Second, func() bool { return scrape(t, d, "inspectd_capture_reconnects_total") >= r0+3 })
	cam.Start()
	cam.Control("Width=64", "Height=48")
	ev, _ := triggerUntil(t, sub, camera, "small", 60*time.Second, func(ev alerts.Event) bool {
		return ev.Verdict != alerts.VerdictError || strings.Contains(ev.Reason, "outside")
	})
	if ev.Verdict != alerts.VerdictError || !strings.Contains(ev.Reason, "outside the 64x48 image") {
		t.Errorf("frame smaller than the ROI: %s %q; want an error naming the 64x48 frame", ev.Verdict, ev.Reason)
	}

	cam.Stop()
	cam.Start() // the simulator's default, 512x512
	up := time.Now()
	_, sent := triggerUntil(t, sub, camera, "back", 60*time.Second, inspected)
	t.Logf("status degraded %v after the camera died; inspections again %v after it came back at 512x512 (%d triggers)",
		degradedAfter.Round(10*time.Millisecond), time.Since(up).Round(10*time.Millisecond), sent)
	for deadline := time.Now().Add(10 * time.Second); sub.lastStatus().State != alerts.StateRunning; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("status %+v after recovery; want running", sub.lastStatus())
		}
	}
}

// awaitDegraded waits for the status to say degraded after the camera went
// down at down, checks that it names the camera, and returns how long that
// took.
func awaitDegraded(t *testing.T, sub *subscriber, down time.Time) time.Duration {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); sub.lastStatus().State != alerts.StateDegraded; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("status %+v with the camera down; want degraded", sub.lastStatus())
		}
	}
	took := time.Since(down)
	if st := sub.lastStatus(); !strings.Contains(st.LastError, "camera reconnecting") {
		t.Errorf("degraded status says %q; want the camera named", st.LastError)
	}
	return took
}
