package capture

import (
	"context"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// Frames in test videos are flat grey with level step*index, so a decoded
// frame tells which frame of the file it was despite MJPEG's losses.
const (
	step   = 5
	frameW = 64
	frameH = 48
)

// writeVideo writes an MJPG .avi of n flat frames into t.TempDir().
func writeVideo(t testing.TB, name string, n int, fps float64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	writeVideoAt(t, path, n, fps)
	return path
}

func writeVideoAt(t testing.TB, path string, n int, fps float64) {
	t.Helper()
	vw, err := gocv.VideoWriterFile(path, "MJPG", fps, frameW, frameH, true)
	if err != nil {
		t.Fatalf("creating test video: %v", err)
	}
	defer vw.Close()
	for i := 0; i < n; i++ {
		v := float64((i * step) % 256)
		m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(v, v, v, 0), frameH, frameW, gocv.MatTypeCV8UC3)
		err := vw.Write(m)
		m.Close()
		if err != nil {
			t.Fatalf("writing test video frame %d: %v", i, err)
		}
	}
}

// frameIndex recovers the index writeVideo encoded in a frame.
func frameIndex(m gocv.Mat) int {
	return int(math.Round(m.Mean().Val1 / step))
}

// encodeImage returns an image file's bytes with flat grey level v.
func encodeImage(t testing.TB, ext gocv.FileExt, v float64) []byte {
	t.Helper()
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(v, v, v, 0), frameH, frameW, gocv.MatTypeCV8UC3)
	defer m.Close()
	buf, err := gocv.IMEncode(ext, m)
	if err != nil {
		t.Fatalf("encoding %s: %v", ext, err)
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...)
}

// writeOld writes a file whose modification time lies in the past, as if a
// camera had dropped it a while ago.
func writeOld(t testing.TB, path string, data []byte, age time.Duration) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-age)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

// waitStatus polls until cond holds or fails the test after a few seconds.
func waitStatus(t testing.TB, src Source, what string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := src.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; status %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func nextWithin(t testing.TB, src Source, d time.Duration) (Frame, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return src.Next(ctx)
}

func mustOpen(t testing.TB, cfg Config) Source {
	t.Helper()
	if cfg.Logger == nil {
		// Failures are asserted through Status; the logs would only
		// bury test output (and may outlive the test in stuck readers).
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	src, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open(%q): %v", cfg.URI, err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}
