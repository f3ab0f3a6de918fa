package capture

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/internal/testenv"
)

func TestGigEURI(t *testing.T) {
	cases := []struct {
		uri, want, errHas string
	}{
		{uri: "gige:", want: `aravissrc ! video/x-raw,format=GRAY8 ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1`},
		{uri: "GigE:Basler-21234567?pixel-format=BayerRG8&exposure=8000&gain=3.5&features=TriggerMode=On%20TriggerSource=Line1",
			want: `aravissrc camera-name="Basler-21234567" exposure=8000 gain=3.5 features="TriggerMode=On TriggerSource=Line1" ! video/x-bayer,format=rggb ! bayer2rgb ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1`},
		{uri: "gige:192.168.10.7?features=TriggerMode=On TriggerSource=Software", want: `aravissrc camera-name="192.168.10.7" features="TriggerMode=On TriggerSource=Software" ! video/x-raw,format=GRAY8`},
		{uri: "gige:cam?pixel-format=Mono12", errHas: "pixel format \"Mono12\" not supported"},
		{uri: "gige:cam?exposure=-1", errHas: "exposure \"-1\" is not a non-negative number"},
		{uri: "gige:cam?gain=loud", errHas: "gain \"loud\""},
		{uri: "gige:cam?exposure=1&exposure=2", errHas: "exposure 2 times"},
		{uri: "gige:cam?pixel-format=BayerBG8&width=640&height=480", want: `aravissrc camera-name="cam" ! video/x-bayer,format=bggr,height=480,width=640 ! bayer2rgb ! videoconvert ! video/x-raw,format=BGR`},
		{uri: "gige:cam?width=0", errHas: "width \"0\" is not a whole number"},
		{uri: "gige:cam?shutter=1", errHas: "unknown GigE option \"shutter\""},
		{uri: "gige:cam?features=TriggerMode", errHas: "not Name=Value"},
		{uri: `gige:cam" ! filesink location=/etc/x`, errHas: "quote"},
		{uri: `gige:cam?features=A=1 ! filesink location=/x`, errHas: "'!'"},
		{uri: "gige:cam?%zz", errHas: "options"},
		{uri: "gige:127.0.0.1?trigger=software&width=320", want: aravisTargetPrefix + "127.0.0.1?trigger=software&width=320"},
		{uri: "gige:cam?trigger=hardware", errHas: "trigger \"hardware\" not supported"},
	}
	for _, c := range cases {
		t.Run(c.uri, func(t *testing.T) {
			kind, target, err := ParseURI(c.uri)
			if c.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("ParseURI(%q) = %q, %v; want an error with %q", c.uri, target, err, c.errHas)
				}
				return
			}
			if err != nil || kind != KindGigE || !strings.HasPrefix(target, c.want) {
				t.Fatalf("ParseURI(%q) = %v, %q, %v; want gige, %q", c.uri, kind, target, err, c.want)
			}
		})
	}
}

// TestGigEFakeCamera reads Aravis's GigE Vision simulator over loopback
// through the gige: kind (aravissrc in OpenCV's GStreamer back end): frames
// at the size the camera was set to, the camera killed and brought back,
// no Mat or goroutine left.
func TestGigEFakeCamera(t *testing.T) {
	if testenv.RunWithoutNetRaw(t) {
		return
	}
	cam := testenv.StartFakeGigE(t, "INSPD1")
	goroutines := runtime.NumGoroutine()
	mats := liveMats()
	opened := time.Now()
	src := mustOpen(t, Config{URI: "gige:" + cam.Address() + "?pixel-format=Mono8&width=320&height=240&exposure=2000&gain=1&features=AcquisitionFrameRate=20",
		StallTimeout: 5 * time.Second, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second})
	first := frameOfSize(t, src, 320, 240, time.Time{}, 20*time.Second)
	time.Sleep(time.Second)
	st0 := src.Status()
	time.Sleep(2 * time.Second)
	fps := float64(src.Status().FramesGrabbed-st0.FramesGrabbed) / 2
	if fps < 5 {
		t.Errorf("%.1f frames/s from a camera set to 20", fps)
	}

	killed := time.Now()
	cam.Stop()
	st := waitFor(t, src, 20*time.Second, "reconnecting after the camera was killed", func(s Status) bool { return s.State == StateReconnecting })
	detected := time.Since(killed)
	t.Logf("camera gone: %s; last frame %v after the kill, %d grabbed", st.LastError, st.LastFrame.Sub(killed), st.FramesGrabbed)
	up := time.Now()
	cam.Start()
	back := frameOfSize(t, src, 320, 240, up, 30*time.Second)
	t.Logf("first frame %v after open; %.1f frames/s; outage seen after %v; %d reopen attempts; first frame %v after the camera came back",
		first.Sub(opened).Round(time.Millisecond), fps, detected.Round(time.Millisecond), src.Status().Reconnects, back.Sub(up).Round(time.Millisecond))
	src.Close()
	if m := liveMats(); m != mats {
		t.Errorf("live Mats %d before, %d after", mats, m)
	}
	for deadline := time.Now().Add(15 * time.Second); runtime.NumGoroutine() > goroutines; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines %d before, %d after:\n%s", goroutines, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
	}
}

// triggerOnce asks an on-demand source for one frame (one software
// trigger) and checks it: its size, taken after the call and before its
// return. It returns the trigger-to-frame time.
func triggerOnce(t *testing.T, src Source, w, h int) time.Duration {
	t.Helper()
	sent := time.Now()
	f, err := nextWithin(t, src, 5*time.Second)
	if err != nil {
		t.Fatalf("software-triggered frame: %v; status %+v", err, src.Status())
	}
	got := time.Now()
	defer f.Mat.Close()
	if f.Mat.Cols() != w || f.Mat.Rows() != h || f.Mat.Channels() != 3 {
		t.Fatalf("frame %dx%d with %d channels; want %dx%d BGR", f.Mat.Cols(), f.Mat.Rows(), f.Mat.Channels(), w, h)
	}
	if f.Time.Before(sent) || f.Time.After(got) {
		t.Fatalf("frame taken at %v, outside the trigger's %v..%v", f.Time, sent, got)
	}
	return got.Sub(sent)
}

// nextFrameOfSize triggers until a frame of w x h comes (the camera being
// reconfigured or reconnecting), within timeout.
func nextFrameOfSize(t *testing.T, src Source, w, h int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < timeout {
		f, err := nextWithin(t, src, 2*time.Second)
		if err != nil {
			last = err.Error()
			time.Sleep(100 * time.Millisecond) // paces attempts while the camera is away; nothing to wait on
			continue
		}
		last = fmt.Sprintf("%dx%d", f.Mat.Cols(), f.Mat.Rows())
		ok := f.Mat.Cols() == w && f.Mat.Rows() == h
		f.Mat.Close()
		if ok {
			return time.Since(start)
		}
	}
	t.Fatalf("no %dx%d frame within %v; last: %s; status %+v", w, h, timeout, last, src.Status())
	return 0
}

// TestGigESoftwareTrigger owns Aravis's simulator in-process through the
// Aravis C API (gige:...?trigger=software): no frame without a trigger, one
// per trigger at the size set, taken after it; killed and brought back; no
// Mat or goroutine left. Over loopback the source asks Aravis for
// a UDP socket itself, so this runs in-process even with CAP_NET_RAW.
func TestGigESoftwareTrigger(t *testing.T) {
	testenv.RequireAravis(t)
	cam := testenv.StartFakeGigE(t, "INSPD3")
	goroutines := runtime.NumGoroutine()
	mats := liveMats()
	opened := time.Now()
	src := mustOpen(t, Config{URI: "gige:" + cam.Address() + "?trigger=software&pixel-format=Mono8&width=320&height=240&exposure=2000",
		StallTimeout: 5 * time.Second, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second})
	if !FiresOnNext(src) {
		t.Fatal("FiresOnNext false for trigger=software")
	}
	waitFor(t, src, 20*time.Second, "the camera ready for triggers", func(s Status) bool { return s.State == StateStreaming })
	ready := time.Since(opened)

	// The simulator runs at 25 frames/s when free: in software-trigger
	// mode nothing may come without a trigger.
	time.Sleep(time.Second)
	if st := src.Status(); st.FramesGrabbed != 0 {
		t.Fatalf("%d frames grabbed without a trigger", st.FramesGrabbed)
	}
	const n = 30
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		lat = append(lat, triggerOnce(t, src, 320, 240))
		if st := src.Status(); st.FramesGrabbed != uint64(i+1) {
			t.Fatalf("%d frames grabbed after %d triggers", st.FramesGrabbed, i+1)
		}
	}
	slices.Sort(lat)
	t.Logf("camera ready %v after open; trigger to frame over %d triggers: median %v, min %v, max %v",
		ready.Round(time.Millisecond), n, lat[n/2].Round(100*time.Microsecond), lat[0].Round(100*time.Microsecond), lat[n-1].Round(100*time.Microsecond))
	time.Sleep(500 * time.Millisecond)
	if st := src.Status(); st.FramesGrabbed != n {
		t.Fatalf("%d frames grabbed after %d triggers", st.FramesGrabbed, n)
	}

	killed := time.Now()
	cam.Stop()
	st := waitFor(t, src, 20*time.Second, "reconnecting after the camera was killed", func(s Status) bool { return s.State == StateReconnecting })
	detected := time.Since(killed)
	if _, err := nextWithin(t, src, time.Second); err == nil {
		t.Fatal("a frame with the camera gone")
	} else {
		t.Logf("trigger with the camera gone: %v", err)
	}
	up := time.Now()
	cam.Start() // returns 300 ms after starting the simulator
	nextFrameOfSize(t, src, 320, 240, 30*time.Second)
	t.Logf("camera gone: %q seen after %v; frames again %v after it was started (%d reopen attempts)",
		st.LastError, detected.Round(time.Millisecond), time.Since(up).Round(time.Millisecond), src.Status().Reconnects)
	triggerOnce(t, src, 320, 240)

	src.Close()
	if m := liveMats(); m != mats {
		t.Errorf("live Mats %d before, %d after", mats, m)
	}
	for deadline := time.Now().Add(20 * time.Second); runtime.NumGoroutine() > goroutines; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines %d before, %d after:\n%s", goroutines, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
	}
}

// TestGigESoftwareTriggerResolution: a camera reconfigured while the source
// is away (the simulator restarted and set to 64x48 with arv-tool-0.8
// before the source reconnects; while the source holds the camera, GigE
// Vision refuses another controller's writes) is read at its new size,
// since the URI sets none.
func TestGigESoftwareTriggerResolution(t *testing.T) {
	testenv.RequireAravis(t)
	cam := testenv.StartFakeGigE(t, "INSPD4")
	mats := liveMats()
	// A fixed backoff: once a failed reopen is counted, the next one is 3 s
	// away, time enough to restart and reconfigure the camera.
	src := mustOpen(t, Config{URI: "gige:" + cam.Address() + "?trigger=software",
		StallTimeout: 5 * time.Second, BackoffMin: 3 * time.Second, BackoffMax: 3 * time.Second})
	waitFor(t, src, 20*time.Second, "the camera ready for triggers", func(s Status) bool { return s.State == StateStreaming })
	// The simulator's default size. The first frame of a connection this
	// large can arrive incomplete over loopback (Aravis sizes the socket's
	// buffer to the frame only once the stream runs): then that trigger
	// fails at once, and the next is taken.
	nextFrameOfSize(t, src, 512, 512, 10*time.Second)
	for _, size := range [][2]int{{64, 48}, {320, 240}} {
		cam.Stop()
		before := waitFor(t, src, 20*time.Second, "reconnecting after the camera was killed", func(s Status) bool { return s.State == StateReconnecting }).Reconnects
		// A reopen attempt that failed with the camera away: the next is
		// BackoffMin later.
		waitFor(t, src, 20*time.Second, "a failed reopen", func(s Status) bool { return s.Reconnects > before })
		cam.Start()
		cam.Control(fmt.Sprintf("Width=%d", size[0]), fmt.Sprintf("Height=%d", size[1]))
		took := nextFrameOfSize(t, src, size[0], size[1], 30*time.Second)
		t.Logf("camera back at %dx%d: frames of that size %v after it was reconfigured", size[0], size[1], took.Round(time.Millisecond))
		triggerOnce(t, src, size[0], size[1])
	}
	src.Close()
	if m := liveMats(); m != mats {
		t.Errorf("live Mats %d before, %d after", mats, m)
	}
}
