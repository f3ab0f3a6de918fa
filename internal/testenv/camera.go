package testenv

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The cameras here are real servers on 127.0.0.1 that the daemon's own
// capture code reads through OpenCV's FFmpeg and GStreamer back ends: nothing
// in between is faked. Each can be killed and restarted on the same port
// (an outage), and restarted at another resolution (a camera reconfigured).

// RequireGStreamer skips the test unless gst-inspect-1.0 finds every element.
func RequireGStreamer(t testing.TB, elements ...string) {
	t.Helper()
	bin, err := exec.LookPath("gst-inspect-1.0")
	if err != nil {
		skip(t, "gst-inspect-1.0 not installed (scripts/setup.sh installs gstreamer1.0-tools)")
	}
	for _, e := range elements {
		// Not --exists: it also demands the plugin's version be at least
		// GStreamer's own, which Aravis's (0.8) is not.
		if err := exec.Command(bin, e).Run(); err != nil {
			skip(t, "GStreamer element %s not installed (scripts/setup.sh installs the GStreamer plugins)", e)
		}
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

//go:embed rtspserver.py
var rtspServerPy []byte

// systemPython is Debian's interpreter, the one python3-gi is installed for
// (a python3 earlier on PATH, from pyenv say, does not see it).
const systemPython = "/usr/bin/python3"

// RTSPServer is gst-rtsp-server serving videotestsrc at rtsp://127.0.0.1:port/cam.
type RTSPServer struct {
	t      testing.TB
	Port   int
	Codec  string // "h264" or "mjpeg"
	FPS    int
	script string
	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	logs   bytes.Buffer
}

// StartRTSP starts an RTSP server (skipping the test when gst-rtsp-server,
// python3-gi or the encoder is missing); it stops at cleanup.
func StartRTSP(t testing.TB, codec string, width, height, fps int) *RTSPServer {
	t.Helper()
	enc := map[string]string{"h264": "x264enc", "mjpeg": "jpegenc"}[codec]
	if enc == "" {
		t.Fatalf("StartRTSP: unknown codec %q", codec)
	}
	RequireGStreamer(t, "videotestsrc", enc)
	if err := exec.Command(systemPython, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer").Run(); err != nil {
		skip(t, "gst-rtsp-server for Python not importable by %s (scripts/setup.sh installs python3-gi and gir1.2-gst-rtsp-server-1.0): %v", systemPython, err)
	}
	s := &RTSPServer{t: t, Port: FreePort(t), Codec: codec, FPS: fps, script: filepath.Join(t.TempDir(), "rtspserver.py")}
	if err := os.WriteFile(s.script, rtspServerPy, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("RTSP server log:\n%s", s.logs.String())
		}
	})
	s.Start(width, height)
	return s
}

// URL is where a client finds the stream.
func (s *RTSPServer) URL() string { return fmt.Sprintf("rtsp://127.0.0.1:%d/cam", s.Port) }

// Start (re)starts the server at width x height and waits until it listens.
func (s *RTSPServer) Start(width, height int) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(systemPython, s.script, fmt.Sprint(s.Port), s.Codec, fmt.Sprint(width), fmt.Sprint(height), fmt.Sprint(s.FPS))
	cmd.Stdout, cmd.Stderr = &s.logs, &s.logs
	// The server dies with the test binary, even when that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting the RTSP server: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	if err := waitListening(s.Port, done, 15*time.Second); err != nil {
		s.t.Fatalf("RTSP server: %v\n%s", err, s.logs.String())
	}
}

// waitListening waits until something accepts on 127.0.0.1:port, failing
// early when exited closes.
func waitListening(port int, exited <-chan struct{}, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited at start")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %d within %v", port, timeout)
		}
	}
}

// Stop kills the server outright, as a camera losing power would vanish.
func (s *RTSPServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.done = nil
}

// MJPEGServer serves an HTTP multipart MJPEG stream (multipart/x-mixed-replace,
// what most IP cameras' /mjpg endpoints send) at http://127.0.0.1:port/mjpg.
// Frames are JPEGs made with Go's encoder, a moving bar on grey, at FPS.
type MJPEGServer struct {
	t    testing.TB
	Port int
	FPS  int
	mu   sync.Mutex
	srv  *http.Server
	w, h int
}

// StartMJPEG starts the server; it stops at cleanup.
func StartMJPEG(t testing.TB, width, height, fps int) *MJPEGServer {
	t.Helper()
	s := &MJPEGServer{t: t, Port: FreePort(t), FPS: fps}
	t.Cleanup(s.Stop)
	s.Start(width, height)
	return s
}

// URL is where a client finds the stream.
func (s *MJPEGServer) URL() string { return fmt.Sprintf("http://127.0.0.1:%d/mjpg", s.Port) }

// Start (re)starts serving at width x height on the same port.
func (s *MJPEGServer) Start(width, height int) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var l net.Listener
	var err error
	// The port was just released by Stop; the kernel may take a moment.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if l, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port)); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		s.t.Fatalf("MJPEG server: %v", err)
	}
	s.w, s.h = width, height
	mux := http.NewServeMux()
	mux.HandleFunc("/mjpg", s.serve)
	s.srv = &http.Server{Handler: mux}
	go s.srv.Serve(l)
}

// Resize changes the size of the frames that follow, on open streams too,
// as a camera reconfigured while streaming does.
func (s *MJPEGServer) Resize(width, height int) {
	s.mu.Lock()
	s.w, s.h = width, height
	s.mu.Unlock()
}

// Stop closes the listener and cuts every open stream.
func (s *MJPEGServer) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

const boundary = "inspectdframe"

func (s *MJPEGServer) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "multipart/x-mixed-replace;boundary="+boundary)
	tick := time.NewTicker(time.Second / time.Duration(max(s.FPS, 1)))
	defer tick.Stop()
	var buf bytes.Buffer
	for n := 0; ; n++ {
		s.mu.Lock()
		width, height := s.w, s.h
		s.mu.Unlock()
		img := image.NewGray(image.Rect(0, 0, width, height))
		for i := range img.Pix {
			img.Pix[i] = 128
		}
		x0 := (n * 4) % width
		for y := 0; y < height; y++ {
			for x := x0; x < min(x0+width/8+1, width); x++ {
				img.SetGray(x, y, color.Gray{Y: 240})
			}
		}
		buf.Reset()
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
			return
		}
		if _, err := fmt.Fprintf(w, "--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", boundary, buf.Len()); err != nil {
			return
		}
		if _, err := w.Write(append(buf.Bytes(), '\r', '\n')); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}
