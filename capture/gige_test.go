package capture

import (
	"runtime"
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
