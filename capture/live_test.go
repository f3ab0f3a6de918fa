package capture

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

func TestVideoFileEnds(t *testing.T) {
	const n = 12
	path := writeVideo(t, "clip.avi", n, 25)
	cases := []struct {
		name string
		cfg  Config
		// reads is how many frames to take; with Loop it exceeds n.
		reads int
		eof   bool
	}{
		{name: "no loop gives every frame then EOF", cfg: Config{URI: path}, reads: n, eof: true},
		{name: "file: prefix", cfg: Config{URI: "file:" + path}, reads: n, eof: true},
		{name: "loop keeps going", cfg: Config{URI: path, Loop: true}, reads: 3*n + 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := liveMats()
			src := mustOpen(t, c.cfg)
			for i := 0; i < c.reads; i++ {
				f, err := nextWithin(t, src, 3*time.Second)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				// Unpaced files are replayed losslessly, in order.
				if got := frameIndex(f.Mat); got != i%n || f.Seq != uint64(i+1) {
					t.Errorf("read %d: file frame %d seq %d, want frame %d seq %d", i, got, f.Seq, i%n, i+1)
				}
				if f.Mat.Cols() != frameW || f.Mat.Rows() != frameH || f.Time.IsZero() {
					t.Errorf("read %d: %dx%d at %v", i, f.Mat.Cols(), f.Mat.Rows(), f.Time)
				}
				f.Mat.Close()
			}
			if c.eof {
				for i := 0; i < 2; i++ { // EOF is sticky
					if _, err := nextWithin(t, src, 3*time.Second); !errors.Is(err, io.EOF) {
						t.Fatalf("after last frame: %v, want io.EOF", err)
					}
				}
				if st := src.Status(); st.State != StateEnded || st.Reconnects != 0 {
					t.Fatalf("status %+v, want ended without reconnects", st)
				}
			} else if st := src.Status(); st.State != StateStreaming || st.Reconnects != 0 {
				t.Fatalf("looping status %+v, want streaming without reconnects", st)
			}
			src.Close()
			if _, err := nextWithin(t, src, time.Second); !errors.Is(err, ErrClosed) {
				t.Fatalf("Next after Close: %v, want ErrClosed", err)
			}
			if after := liveMats(); after != before {
				t.Fatalf("live Mats %d before, %d after", before, after)
			}
		})
	}
}

func TestNewestFrameWins(t *testing.T) {
	// A paced file is a 500 fps "camera"; the consumer takes a frame every
	// 20 ms, so it must skip ahead rather than work through a backlog.
	path := writeVideo(t, "fast.avi", 50, 25)
	before := liveMats()
	src := mustOpen(t, Config{URI: path, Loop: true, Pace: true, PaceFPS: 500})
	var seqs []uint64
	for i := 0; i < 12; i++ {
		f, err := nextWithin(t, src, 3*time.Second)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		seqs = append(seqs, f.Seq)
		f.Mat.Close()
		time.Sleep(20 * time.Millisecond)
	}
	gaps := 0
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("seqs not increasing: %v", seqs)
		}
		if seqs[i] > seqs[i-1]+1 {
			gaps++
		}
	}
	if gaps == 0 {
		t.Fatalf("slow consumer saw every frame in order %v; want skipped stale frames", seqs)
	}
	st := src.Status()
	if st.FramesDropped == 0 || st.FramesDelivered != uint64(len(seqs)) {
		t.Fatalf("status %+v: want drops and %d delivered", st, len(seqs))
	}
	src.Close()
	st = src.Status()
	// Every grabbed Mat was either handed out or closed when superseded
	// (the one left in the slot is closed by Close).
	if st.FramesGrabbed < st.FramesDelivered+st.FramesDropped || st.FramesGrabbed > st.FramesDelivered+st.FramesDropped+1 {
		t.Fatalf("grabbed %d != delivered %d + dropped %d (+1 in slot)", st.FramesGrabbed, st.FramesDelivered, st.FramesDropped)
	}
	if after := liveMats(); after != before {
		t.Fatalf("live Mats %d before, %d after", before, after)
	}
}

func TestMaxRateSpacesFrames(t *testing.T) {
	path := writeVideo(t, "rate.avi", 5, 25)
	src := mustOpen(t, Config{URI: path, Loop: true, MaxRate: 50})
	start := time.Now()
	const n = 6
	for i := 0; i < n; i++ {
		f, err := nextWithin(t, src, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		f.Mat.Close()
	}
	// An unpaced file is ready instantly; only MaxRate can hold Next back.
	if min := (n - 1) * 20 * time.Millisecond; time.Since(start) < min {
		t.Fatalf("%d frames in %v at MaxRate 50, want at least %v", n, time.Since(start), min)
	}
}

func TestBrokenFileReconnectsWithBackoff(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(t *testing.T, path string)
		errHas  string
	}{
		{name: "missing", prepare: func(*testing.T, string) {}, errHas: "no such file"},
		{name: "not a video", prepare: func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("this is not a video at all"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, errHas: "open"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cam.avi")
			c.prepare(t, path)
			src := mustOpen(t, Config{URI: path, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
			st := waitStatus(t, src, "capped backoff", func(s Status) bool {
				return s.Reconnects >= 4 && s.Backoff == 20*time.Millisecond
			})
			if st.State != StateReconnecting || !strings.Contains(st.LastError, c.errHas) {
				t.Fatalf("status %+v, want reconnecting with error about %q", st, c.errHas)
			}
			if _, err := nextWithin(t, src, 30*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Next on a broken source: %v, want a deadline error", err)
			}
			// The camera comes back: frames flow without a restart.
			writeVideoAt(t, path+".tmp.avi", 4, 25)
			if err := os.Rename(path+".tmp.avi", path); err != nil {
				t.Fatal(err)
			}
			f, err := nextWithin(t, src, 3*time.Second)
			if err != nil {
				t.Fatalf("after repair: %v", err)
			}
			f.Mat.Close()
			if st := src.Status(); st.State != StateStreaming && st.State != StateEnded {
				t.Fatalf("after repair status %+v", st)
			}
		})
	}
}

func TestFileDeletedWhileLooping(t *testing.T) {
	path := writeVideo(t, "loop.avi", 3, 25)
	src := mustOpen(t, Config{URI: path, Loop: true, BackoffMin: 5 * time.Millisecond, BackoffMax: 10 * time.Millisecond})
	for i := 0; i < 4; i++ {
		f, err := nextWithin(t, src, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		f.Mat.Close()
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	// Drain what was grabbed before the deletion took effect.
	for {
		f, err := nextWithin(t, src, 100*time.Millisecond)
		if err != nil {
			break
		}
		f.Mat.Close()
	}
	st := waitStatus(t, src, "reconnects after deletion", func(s Status) bool { return s.Reconnects >= 3 })
	if st.State != StateReconnecting || !strings.Contains(st.LastError, "no such file") {
		t.Fatalf("status %+v", st)
	}
}

func TestContextCancelStops(t *testing.T) {
	path := writeVideo(t, "c.avi", 5, 25)
	ctx, cancel := context.WithCancel(context.Background())
	src, err := Open(ctx, Config{URI: path, Loop: true, Pace: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	f, err := nextWithin(t, src, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f.Mat.Close()
	cancel()
	if _, err := nextWithin(t, src, 3*time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after cancel: %v, want ErrClosed", err)
	}
	waitStatus(t, src, "closed", func(s Status) bool { return s.State == StateClosed })
}

func TestOpenRejectsBadConfig(t *testing.T) {
	if _, err := Open(context.Background(), Config{URI: "0", Loop: true}); err == nil {
		t.Fatal("Open accepted Loop on a camera")
	}
}

// hangingCapture yields a few frames per connection, then blocks in Read
// until released: a camera whose driver hangs instead of failing.
type hangingCapture struct {
	frames  int
	release chan struct{}
	closed  *atomic.Int32
	img     gocv.Mat
}

func (h *hangingCapture) Read(m *gocv.Mat) bool {
	if h.frames == 0 {
		<-h.release
		return false
	}
	h.frames--
	h.img.CopyTo(m)
	return true
}
func (h *hangingCapture) FPS() float64 { return 0 }
func (h *hangingCapture) Close() error { h.closed.Add(1); return nil }

func TestStalledCameraIsAbandonedAndReopened(t *testing.T) {
	img := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(9, 9, 9, 0), 8, 8, gocv.MatTypeCV8UC3)
	defer img.Close()
	before := liveMats()
	release := make(chan struct{})
	var opened, closed atomic.Int32
	var mu sync.Mutex
	open := func(Kind, string) (capturer, error) {
		mu.Lock()
		defer mu.Unlock()
		opened.Add(1)
		return &hangingCapture{frames: 2, release: release, closed: &closed, img: img}, nil
	}
	cfg := Config{URI: "/dev/video9", StallTimeout: 40 * time.Millisecond, BackoffMin: 5 * time.Millisecond, BackoffMax: 10 * time.Millisecond}.withDefaults()
	src := openLive(context.Background(), cfg, KindDevice, "/dev/video9", open, false)
	defer src.Close()

	var last uint64
	for i := 0; i < 5; i++ {
		f, err := nextWithin(t, src, 3*time.Second)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Seq <= last {
			t.Fatalf("seq %d after %d", f.Seq, last)
		}
		last = f.Seq
		f.Mat.Close()
	}
	st := waitStatus(t, src, "stall reconnects", func(s Status) bool { return s.Reconnects >= 2 && s.StuckReaders >= 2 })
	if !strings.Contains(st.LastError, "stalled") {
		t.Fatalf("status %+v, want a stall error", st)
	}
	// The hung driver calls return: each abandoned reader closes its own
	// backend and nothing stays stuck.
	close(release)
	waitStatus(t, src, "stuck readers gone", func(s Status) bool { return s.StuckReaders == 0 })
	src.Close()
	if o, c := opened.Load(), closed.Load(); o != c {
		t.Fatalf("opened %d backends, closed %d", o, c)
	}
	if after := liveMats(); after != before {
		t.Fatalf("live Mats %d before, %d after", before, after)
	}
}

type failingCapture struct{}

func (failingCapture) Read(*gocv.Mat) bool { return false }
func (failingCapture) FPS() float64        { return 0 }
func (failingCapture) Close() error        { return nil }

func TestFailingCameraNeverEnds(t *testing.T) {
	var opens atomic.Int32
	open := func(Kind, string) (capturer, error) {
		if opens.Add(1)%2 == 0 {
			return nil, errors.New("device busy")
		}
		return failingCapture{}, nil
	}
	cfg := Config{URI: "rtsp://cam/1", BackoffMin: time.Millisecond, BackoffMax: 4 * time.Millisecond}.withDefaults()
	src := openLive(context.Background(), cfg, KindStream, "rtsp://cam/1", open, false)
	defer src.Close()
	st := waitStatus(t, src, "many reconnects", func(s Status) bool { return s.Reconnects >= 10 })
	if st.State != StateReconnecting || st.LastError == "" {
		t.Fatalf("status %+v", st)
	}
	if _, err := nextWithin(t, src, 20*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next: %v, want deadline (a live camera never ends by itself)", err)
	}
}
