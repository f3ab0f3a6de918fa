package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/imageops"
)

func hotConfig(dir string) Config {
	return Config{URI: "dir:" + dir, PollInterval: 10 * time.Millisecond, SettleTime: 30 * time.Millisecond}
}

// drain takes frames until none arrives for quiet, acking each if ack.
func drain(t *testing.T, src Source, quiet time.Duration, ack bool) []string {
	t.Helper()
	var names []string
	for {
		f, err := nextWithin(t, src, quiet)
		if errors.Is(err, context.DeadlineExceeded) {
			return names
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if f.Mat.Empty() || f.PartID == "" || f.Time.IsZero() {
			t.Fatalf("frame %+v lacks image, part id or time", f)
		}
		f.Mat.Close()
		names = append(names, f.PartID)
		if ack {
			if err := src.Ack(f); err != nil {
				t.Fatalf("Ack(%s): %v", f.PartID, err)
			}
		}
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

func TestHotFolderDeliversExistingAndNewFilesOnce(t *testing.T) {
	dir := t.TempDir()
	png := encodeImage(t, gocv.PNGFileExt, 100)
	jpg := encodeImage(t, gocv.JPEGFileExt, 150)
	bmp := encodeImage(t, ".bmp", 200)
	// Present at start, oldest first regardless of name.
	writeOld(t, filepath.Join(dir, "b.png"), png, 3*time.Second)
	writeOld(t, filepath.Join(dir, "a.JPG"), jpg, 2*time.Second)
	// Never parts: hidden, temporary and foreign files.
	writeOld(t, filepath.Join(dir, ".c.png"), png, time.Hour)
	writeOld(t, filepath.Join(dir, "d.png.part"), png, time.Hour)
	writeOld(t, filepath.Join(dir, "e.tmp"), png, time.Hour)
	writeOld(t, filepath.Join(dir, "notes.txt"), []byte("hi"), time.Hour)

	src := mustOpen(t, hotConfig(dir))
	got := drain(t, src, 200*time.Millisecond, true)
	if strings.Join(got, ",") != "b.png,a.JPG" {
		t.Fatalf("delivered %v, want [b.png a.JPG] (oldest first)", got)
	}
	// Files arriving while running.
	writeOld(t, filepath.Join(dir, "f.bmp"), bmp, 0)
	writeOld(t, filepath.Join(dir, "g.jpeg"), jpg, 0)
	got = drain(t, src, 300*time.Millisecond, true)
	sort.Strings(got)
	if strings.Join(got, ",") != "f.bmp,g.jpeg" {
		t.Fatalf("delivered %v after adding files, want f.bmp and g.jpeg once each", got)
	}
	if done := listDir(t, filepath.Join(dir, DoneDir)); strings.Join(done, ",") != "a.JPG,b.png,f.bmp,g.jpeg" {
		t.Fatalf("done/ holds %v", done)
	}
	if left := listDir(t, dir); strings.Join(left, ",") != ".c.png,d.png.part,e.tmp,notes.txt" {
		t.Fatalf("folder still holds %v, want only the ignored files", left)
	}
	st := src.Status()
	if st.State != StateStreaming || st.FramesDelivered != 4 || st.Failed != 0 {
		t.Fatalf("status %+v", st)
	}
}

func TestHotFolderImageContent(t *testing.T) {
	dir := t.TempDir()
	writeOld(t, filepath.Join(dir, "p.png"), encodeImage(t, gocv.PNGFileExt, 123), time.Second)
	src := mustOpen(t, hotConfig(dir))
	f, err := nextWithin(t, src, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Mat.Close()
	if f.Mat.Cols() != frameW || f.Mat.Rows() != frameH || f.Mat.Channels() != 3 || f.Mat.Mean().Val1 != 123 {
		t.Fatalf("decoded %dx%dx%d mean %v", f.Mat.Cols(), f.Mat.Rows(), f.Mat.Channels(), f.Mat.Mean())
	}
	if f.Source != "dir:"+dir || f.Seq != 1 {
		t.Fatalf("frame source %q seq %d", f.Source, f.Seq)
	}
}

func TestHotFolderRestartRedeliversOnlyUnacked(t *testing.T) {
	dir := t.TempDir()
	png := encodeImage(t, gocv.PNGFileExt, 60)
	for i, n := range []string{"1.png", "2.png", "3.png", "4.png"} {
		writeOld(t, filepath.Join(dir, n), png, time.Duration(10-i)*time.Second)
	}
	first, err := Open(context.Background(), hotConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	var frames []Frame
	for i := 0; i < 4; i++ {
		f, err := nextWithin(t, first, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		f.Mat.Close()
		frames = append(frames, f)
	}
	// Only 1 and 3 reach the durable queue before the daemon stops.
	for _, i := range []int{0, 2} {
		if err := first.Ack(frames[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := first.Ack(frames[0]); err == nil {
		t.Fatal("second Ack of the same frame succeeded")
	}
	if err := first.Ack(Frame{PartID: "9.png", Source: "dir:" + dir}); err == nil {
		t.Fatal("Ack of a frame never delivered succeeded")
	}
	if err := first.Ack(Frame{PartID: "2.png", Source: "/dev/video0"}); err == nil {
		t.Fatal("Ack of a frame from another source succeeded")
	}
	// Delivered but unacknowledged files are not handed out twice by the
	// same source.
	if again := drain(t, first, 100*time.Millisecond, false); len(again) != 0 {
		t.Fatalf("same source redelivered %v", again)
	}
	first.Close()

	second := mustOpen(t, hotConfig(dir))
	got := drain(t, second, 200*time.Millisecond, true)
	if strings.Join(got, ",") != "2.png,4.png" {
		t.Fatalf("after restart delivered %v, want the unacked [2.png 4.png]", got)
	}
	second.Close()
	third := mustOpen(t, hotConfig(dir))
	if got := drain(t, third, 100*time.Millisecond, false); len(got) != 0 {
		t.Fatalf("third start redelivered %v", got)
	}
}

func TestHotFolderWaitsForPartialFile(t *testing.T) {
	dir := t.TempDir()
	cfg := hotConfig(dir)
	cfg.SettleTime = 500 * time.Millisecond
	src := mustOpen(t, cfg)
	data := encodeImage(t, gocv.PNGFileExt, 90)
	path := filepath.Join(dir, "slow.png")
	if err := os.WriteFile(path, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if f, err := nextWithin(t, src, 150*time.Millisecond); err == nil {
		f.Mat.Close()
		t.Fatal("delivered a file still being written")
	}
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.Write(data[len(data)/2:]); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	f, err := nextWithin(t, src, 3*time.Second)
	if err != nil {
		t.Fatalf("completed file: %v", err)
	}
	defer f.Mat.Close()
	if f.PartID != "slow.png" || f.Mat.Mean().Val1 != 90 {
		t.Fatalf("got %s mean %v", f.PartID, f.Mat.Mean())
	}
	if failed := listDir(t, filepath.Join(dir, FailedDir)); len(failed) != 0 {
		t.Fatalf("failed/ holds %v", failed)
	}
}

func TestHotFolderMovesBrokenFilesToFailed(t *testing.T) {
	good := encodeImage(t, gocv.PNGFileExt, 40)
	jpg := encodeImage(t, gocv.JPEGFileExt, 40)
	cases := []struct {
		name   string
		file   string
		data   []byte
		reason string
	}{
		// Looks complete (ends in an end-of-image marker) but is not a JPEG.
		{name: "corrupt", file: "bad.jpg", data: append([]byte("garbage, not an image"), 0xFF, 0xD9), reason: "not a PNG, JPEG or BMP"},
		// Cut short long ago: its writer is not coming back.
		{name: "truncated", file: "cut.jpg", data: jpg[:len(jpg)/2], reason: "truncated"},
		{name: "bmp header lies", file: "short.bmp", data: encodeImage(t, ".bmp", 5)[:200], reason: "truncated"},
		{name: "empty-ish png", file: "x.png", data: []byte("not png"), reason: "not a PNG"},
		// A 20000 x 20000 header in a small file: refused from the header,
		// before 1.2 GB are decoded (on main: the daemon was OOM-killed).
		{name: "huge png header", file: "huge.png", data: hugePNG(20000, 20000), reason: "image too large: 20000x20000"},
		// Empty long after it appeared: not a file being written.
		{name: "zero bytes", file: "zero.png", data: nil, reason: "empty file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeOld(t, filepath.Join(dir, c.file), c.data, time.Hour)
			writeOld(t, filepath.Join(dir, "ok.png"), good, time.Minute)
			src := mustOpen(t, hotConfig(dir))
			got := drain(t, src, 200*time.Millisecond, true)
			if strings.Join(got, ",") != "ok.png" {
				t.Fatalf("delivered %v, want only ok.png", got)
			}
			failed := listDir(t, filepath.Join(dir, FailedDir))
			if strings.Join(failed, ",") != c.file+","+c.file+".reason.txt" {
				t.Fatalf("failed/ holds %v", failed)
			}
			reason, err := os.ReadFile(filepath.Join(dir, FailedDir, c.file+".reason.txt"))
			if err != nil || !strings.Contains(string(reason), c.reason) {
				t.Fatalf("reason %q (%v), want it to mention %q", reason, err, c.reason)
			}
			if st := src.Status(); st.Failed != 1 || !strings.Contains(st.LastError, c.file) {
				t.Fatalf("status %+v", st)
			}
		})
	}
}

func TestHotFolderSameNameAgainIsANewPart(t *testing.T) {
	dir := t.TempDir()
	png := encodeImage(t, gocv.PNGFileExt, 10)
	src := mustOpen(t, hotConfig(dir))
	for round := 0; round < 2; round++ {
		writeOld(t, filepath.Join(dir, "cam.png"), png, time.Second)
		if got := drain(t, src, 150*time.Millisecond, true); strings.Join(got, ",") != "cam.png" {
			t.Fatalf("round %d delivered %v", round, got)
		}
	}
	if done := listDir(t, filepath.Join(dir, DoneDir)); len(done) != 2 {
		t.Fatalf("done/ holds %v, want both parts kept", done)
	}
}

func TestHotFolderMissingFolderRetries(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	cfg := hotConfig(dir)
	cfg.BackoffMin, cfg.BackoffMax = 5*time.Millisecond, 20*time.Millisecond
	src := mustOpen(t, cfg)
	if _, err := nextWithin(t, src, 150*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next on missing folder: %v", err)
	}
	st := src.Status()
	if st.State != StateReconnecting || st.Reconnects < 2 || st.Backoff != 20*time.Millisecond || !strings.Contains(st.LastError, "no such file") {
		t.Fatalf("status %+v", st)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeOld(t, filepath.Join(dir, "late.png"), encodeImage(t, gocv.PNGFileExt, 1), time.Second)
	if got := drain(t, src, 200*time.Millisecond, true); strings.Join(got, ",") != "late.png" {
		t.Fatalf("delivered %v after the folder appeared", got)
	}
	if st := src.Status(); st.State != StateStreaming || st.Backoff != 0 {
		t.Fatalf("status %+v", st)
	}
}

func TestHotFolderCloseUnblocksNext(t *testing.T) {
	src := mustOpen(t, hotConfig(t.TempDir()))
	errc := make(chan error, 1)
	go func() {
		_, err := src.Next(context.Background())
		errc <- err
	}()
	time.Sleep(30 * time.Millisecond)
	src.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Next after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Next still blocked after Close")
	}
}

// BenchmarkHotFolderNextAck measures one part through the hot folder:
// decode a 64x48 PNG, hand it out, acknowledge it (rename + two dir fsyncs).
func BenchmarkHotFolderNextAck(b *testing.B) {
	dir := b.TempDir()
	png := encodeImage(b, gocv.PNGFileExt, 50)
	for i := 0; i < b.N; i++ {
		writeOld(b, filepath.Join(dir, fmt.Sprintf("%07d.png", i)), png, time.Minute)
	}
	cfg := hotConfig(dir)
	cfg.PollInterval = time.Second
	src := mustOpen(b, cfg)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := nextWithin(b, src, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		f.Mat.Close()
		if err := src.Ack(f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVideoFileNext measures lossless replay of a small MJPG file.
func BenchmarkVideoFileNext(b *testing.B) {
	path := writeVideo(b, "bench.avi", 50, 25)
	src := mustOpen(b, Config{URI: path, Loop: true})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := nextWithin(b, src, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		f.Mat.Close()
	}
}

func TestHotFolderAckOfVanishedFile(t *testing.T) {
	dir := t.TempDir()
	writeOld(t, filepath.Join(dir, "gone.png"), encodeImage(t, gocv.PNGFileExt, 3), time.Second)
	src := mustOpen(t, hotConfig(dir))
	f, err := nextWithin(t, src, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f.Mat.Close()
	if err := os.Remove(filepath.Join(dir, "gone.png")); err != nil {
		t.Fatal(err)
	}
	if err := src.Ack(f); err == nil || !strings.Contains(err.Error(), "gone.png") {
		t.Fatalf("Ack of a removed file: %v, want an error naming it", err)
	}
	if err := src.Ack(f); err == nil || !strings.Contains(err.Error(), "already acknowledged") {
		t.Fatalf("second Ack: %v, want the file no longer tracked", err)
	}
}

// hugePNG is a small PNG whose header declares w x h pixels.
func hugePNG(w, h uint32) []byte {
	chunk := func(typ string, data []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		b = append(append(b, typ...), data...)
		return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	ihdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, w), h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0)
	out := append([]byte("\x89PNG\r\n\x1a\n"), chunk("IHDR", ihdr)...)
	out = append(out, chunk("IDAT", make([]byte, 1024))...)
	return append(out, chunk("IEND", nil)...)
}

// The pixel and byte limits are the source's settings.
func TestHotFolderImageLimits(t *testing.T) {
	png := encodeImage(t, gocv.PNGFileExt, 40)
	cases := []struct {
		name   string
		lim    imageops.Limits
		failed bool
		reason string
	}{
		{"defaults", imageops.Limits{}, false, ""},
		{"pixels over", imageops.Limits{MaxPixels: frameW*frameH - 1}, true, "image too large"},
		{"pixels at", imageops.Limits{MaxPixels: frameW * frameH}, false, ""},
		{"bytes over", imageops.Limits{MaxBytes: int64(len(png)) - 1}, true, "image too large: file of"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeOld(t, filepath.Join(dir, "p.png"), png, time.Minute)
			cfg := hotConfig(dir)
			cfg.ImageLimits = c.lim
			src := mustOpen(t, cfg)
			got := drain(t, src, 200*time.Millisecond, true)
			if (len(got) == 0) != c.failed {
				t.Fatalf("delivered %v; want failed %v", got, c.failed)
			}
			if c.failed {
				reason, err := os.ReadFile(filepath.Join(dir, FailedDir, "p.png.reason.txt"))
				if err != nil || !strings.Contains(string(reason), c.reason) {
					t.Fatalf("reason %q (%v); want %q", reason, err, c.reason)
				}
			}
		})
	}
}

// A file in hand when the process died is not tried again by the next
// process: it might be what killed it (on main, a PNG that exhausts memory
// was retried and OOM-killed the daemon at every restart). A clean stop
// instead leaves unacknowledged files to be tried again.
func TestHotFolderCrashMarker(t *testing.T) {
	png := encodeImage(t, gocv.PNGFileExt, 40)
	cases := []struct {
		name      string
		cleanStop bool
		want      []string // delivered by the next process
		failed    []string
	}{
		{"process died", false, []string{"b.png"}, []string{"a.png", "a.png.reason.txt"}},
		{"clean stop", true, []string{"a.png", "b.png"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeOld(t, filepath.Join(dir, "a.png"), png, 2*time.Minute)
			first := mustOpen(t, hotConfig(dir))
			f, err := nextWithin(t, first, 3*time.Second)
			if err != nil || f.PartID != "a.png" {
				t.Fatalf("first delivery %q: %v", f.PartID, err)
			}
			f.Mat.Close()
			if _, err := os.Stat(filepath.Join(dir, ".a.png.inspecting")); err != nil {
				t.Fatalf("no marker while the file is in hand: %v", err)
			}
			if c.cleanStop {
				first.Close()
			} else {
				// The process "dies" holding a.png (no Ack, no Close): the
				// kernel drops its lock on the folder.
				first.(*hotFolder).lock.release()
			}
			writeOld(t, filepath.Join(dir, "b.png"), png, time.Minute)
			next := mustOpen(t, hotConfig(dir))
			got := drain(t, next, 300*time.Millisecond, true)
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Fatalf("next process delivered %v; want %v", got, c.want)
			}
			if failed := listDir(t, filepath.Join(dir, FailedDir)); strings.Join(failed, ",") != strings.Join(c.failed, ",") {
				t.Fatalf("failed/ holds %v; want %v", failed, c.failed)
			}
			if c.failed != nil {
				reason, _ := os.ReadFile(filepath.Join(dir, FailedDir, "a.png.reason.txt"))
				if !strings.Contains(string(reason), "stopped while decoding or inspecting") {
					t.Errorf("reason %q", reason)
				}
			}
			for _, name := range listDir(t, dir) {
				if strings.HasSuffix(name, ".inspecting") {
					t.Errorf("marker %s left behind", name)
				}
			}
		})
	}
}

// A zero-byte file is left alone while it may still be written, then failed.
func TestHotFolderZeroByteFileGrace(t *testing.T) {
	dir := t.TempDir()
	writeOld(t, filepath.Join(dir, "new.png"), nil, 0)
	src := mustOpen(t, hotConfig(dir))
	if got := drain(t, src, 100*time.Millisecond, true); len(got) != 0 {
		t.Fatalf("delivered %v", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "new.png")); err != nil {
		t.Fatalf("fresh empty file moved within its grace: %v", err)
	}
	// incompleteGrace x SettleTime (300 ms) later it is broken; Next
	// drives the scans (it never returns a frame here).
	for deadline := time.Now().Add(5 * time.Second); src.Status().Failed != 1; {
		if time.Now().After(deadline) {
			t.Fatalf("empty file not failed: %+v", src.Status())
		}
		if f, err := nextWithin(t, src, 50*time.Millisecond); err == nil {
			f.Mat.Close()
			t.Fatalf("delivered %s", f.PartID)
		}
	}
	reason, err := os.ReadFile(filepath.Join(dir, FailedDir, "new.png.reason.txt"))
	if err != nil || !strings.Contains(string(reason), "empty file") {
		t.Fatalf("reason %q (%v)", reason, err)
	}
}
