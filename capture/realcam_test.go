package capture

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/internal/testenv"
)

// camServer is a real camera server on loopback that can be killed and
// brought back, possibly at another resolution.
type camServer interface {
	URL() string
	Start(width, height int)
	Stop()
}

// Pipelines as a Jetson reads the same servers through GStreamer
// (nvv4l2decoder in place of avdec_h264 there).
func gstRTSP(url string) string {
	return "gst:rtspsrc location=" + url + " latency=0 ! rtph264depay ! avdec_h264 ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1"
}

func gstHTTP(url string) string {
	return "gst:souphttpsrc location=" + url + " is-live=true ! multipartdemux ! jpegdec ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1"
}

type realCam struct {
	name  string
	start func(t *testing.T, w, h int) (camServer, string)
}

var realCams = []realCam{
	{"rtsp h264", func(t *testing.T, w, h int) (camServer, string) {
		s := testenv.StartRTSP(t, "h264", w, h, 15)
		return s, s.URL()
	}},
	{"rtsp mjpeg", func(t *testing.T, w, h int) (camServer, string) {
		s := testenv.StartRTSP(t, "mjpeg", w, h, 15)
		return s, s.URL()
	}},
	{"http mjpeg", func(t *testing.T, w, h int) (camServer, string) {
		s := testenv.StartMJPEG(t, w, h, 15)
		return s, s.URL()
	}},
	{"gst rtsp h264", func(t *testing.T, w, h int) (camServer, string) {
		testenv.RequireGStreamer(t, "rtspsrc", "rtph264depay", "avdec_h264", "videoconvert", "appsink")
		s := testenv.StartRTSP(t, "h264", w, h, 15)
		return s, gstRTSP(s.URL())
	}},
	{"gst http mjpeg", func(t *testing.T, w, h int) (camServer, string) {
		testenv.RequireGStreamer(t, "souphttpsrc", "multipartdemux", "jpegdec", "videoconvert", "appsink")
		s := testenv.StartMJPEG(t, w, h, 15)
		return s, gstHTTP(s.URL())
	}},
}

// waitFor polls cond until it holds or fails the test after timeout.
func waitFor(t *testing.T, src Source, timeout time.Duration, what string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := src.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; status %+v", timeout, what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// frameOfSize reads until a frame of w x h grabbed at or after since
// arrives, closing the others; it returns when that frame was taken.
func frameOfSize(t *testing.T, src Source, w, h int, since time.Time, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f, err := nextWithin(t, src, time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for a %dx%d frame: %v; status %+v", w, h, err, src.Status())
		}
		gw, gh, at := f.Mat.Cols(), f.Mat.Rows(), f.Time
		f.Mat.Close()
		if gw == w && gh == h && !at.Before(since) {
			return at
		}
	}
}

// TestRealCameraOutageAndRecovery reads each kind of network camera from a
// real server on 127.0.0.1 through the daemon's own capture code (OpenCV's
// FFmpeg or GStreamer back end): frames arrive at the server's size; the
// server killed mid-stream makes the source reconnect with growing backoff;
// the server back, at another resolution, brings frames of the new size;
// afterwards no Mat and no goroutine is left behind.
func TestRealCameraOutageAndRecovery(t *testing.T) {
	for _, c := range realCams {
		t.Run(c.name, func(t *testing.T) {
			goroutines := runtime.NumGoroutine()
			mats := liveMats()
			srv, uri := c.start(t, 160, 120)
			opened := time.Now()
			src := mustOpen(t, Config{URI: uri, StallTimeout: 2 * time.Second, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second})

			first := frameOfSize(t, src, 160, 120, time.Time{}, 20*time.Second)
			// The rate is measured after the burst of frames FFmpeg
			// buffered while probing the stream.
			time.Sleep(time.Second)
			st0 := src.Status()
			time.Sleep(2 * time.Second)
			st1 := src.Status()
			fps := float64(st1.FramesGrabbed-st0.FramesGrabbed) / 2
			if fps < 5 {
				t.Errorf("%.1f frames/s from a 15 frames/s camera", fps)
			}

			killed := time.Now()
			srv.Stop()
			st := waitFor(t, src, 15*time.Second, "reconnecting after the server was killed", func(s Status) bool { return s.State == StateReconnecting })
			detected := time.Since(killed)
			if st.LastError == "" {
				t.Errorf("reconnecting with no error: %+v", st)
			}
			// Down long enough for several attempts: the wait must grow.
			st = waitFor(t, src, 15*time.Second, "three reopen attempts", func(s Status) bool { return s.Reconnects >= 3 })
			if st.Backoff <= 100*time.Millisecond {
				t.Errorf("backoff %v after %d attempts; want it grown past the minimum", st.Backoff, st.Reconnects)
			}

			up := time.Now()
			srv.Start(128, 96)
			back := frameOfSize(t, src, 128, 96, up, 30*time.Second)
			recovered := back.Sub(up)
			if s := src.Status(); s.State != StateStreaming {
				t.Errorf("state %s after frames came back", s.State)
			}
			t.Logf("first frame %v after open; %.1f frames/s; outage seen after %v; %d reopen attempts; first frame %v after the server came back (at a new size)",
				first.Sub(opened).Round(time.Millisecond), fps, detected.Round(time.Millisecond), src.Status().Reconnects, recovered.Round(time.Millisecond))

			src.Close()
			srv.Stop()
			if m := liveMats(); m != mats {
				t.Errorf("live Mats %d before, %d after", mats, m)
			}
			// Readers abandoned in the driver exit once it gives up; the
			// count must come back.
			for deadline := time.Now().Add(40 * time.Second); runtime.NumGoroutine() > goroutines; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					buf := make([]byte, 1<<20)
					t.Fatalf("goroutines %d before, %d after:\n%s", goroutines, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				}
			}
		})
	}
}

// TestStreamResolutionChangeMidStream: an HTTP MJPEG camera reconfigured
// while streaming sends frames of the new size on the same connection.
// GStreamer delivers them at that size without a reconnect. OpenCV 4.6's
// FFmpeg back end instead scales every frame to the size the stream started
// with and reports that size in its properties too, so nothing downstream
// can tell: this test pins that behaviour, which the README documents.
func TestStreamResolutionChangeMidStream(t *testing.T) {
	cases := []struct {
		name string
		uri  func(url string) string
		// wantW x wantH is what arrives after the change to 128x96.
		wantW, wantH int
	}{
		{"ffmpeg scales to the first size", func(url string) string { return url }, 160, 120},
		{"gstreamer delivers the new size", gstHTTP, 128, 96},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if strings.HasPrefix(c.uri(""), "gst:") {
				testenv.RequireGStreamer(t, "souphttpsrc", "multipartdemux", "jpegdec", "videoconvert", "appsink")
			}
			srv := testenv.StartMJPEG(t, 160, 120, 15)
			src := mustOpen(t, Config{URI: c.uri(srv.URL()), StallTimeout: 2 * time.Second, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second})
			frameOfSize(t, src, 160, 120, time.Time{}, 20*time.Second)
			srv.Resize(128, 96)
			// Frames of the new size are on the wire a frame interval
			// later; give it ten.
			changed := time.Now().Add(10 * time.Second / 15)
			at := frameOfSize(t, src, c.wantW, c.wantH, changed, 10*time.Second)
			if st := src.Status(); st.Reconnects != 0 || st.State != StateStreaming {
				t.Errorf("status %+v after the change; want streaming without a reconnect", st)
			}
			t.Logf("%dx%d frames from %v", c.wantW, c.wantH, at.Format(time.StampMilli))
		})
	}
}
