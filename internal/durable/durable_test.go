package durable

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The file mode is the caller's with the umask applied. On main WriteAtomic
// forced 0644 on models and heatmaps even under the unit's UMask=0027.
func TestWriteFileHonoursModeAndUmask(t *testing.T) {
	cases := []struct {
		umask int
		perm  fs.FileMode
		want  fs.FileMode
	}{
		{0o022, 0o644, 0o644},
		{0o027, 0o644, 0o640}, // the unit's UMask
		{0o077, 0o644, 0o600},
		{0o022, 0o600, 0o600}, // a caller asking for private files gets them
		{0o000, 0o666, 0o666},
	}
	for _, c := range cases {
		old := syscall.Umask(c.umask)
		path := filepath.Join(t.TempDir(), "m.zip")
		err := WriteFile(path, []byte("x"), c.perm)
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.want {
			t.Errorf("umask %04o, perm %04o: mode %04o; want %04o", c.umask, c.perm, got, c.want)
		}
	}
}

func TestWriteReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for _, content := range []string{"first", "second, longer"} {
		if err := WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Fatalf("read %q; want %q", b, content)
		}
	}
	// A failing writer leaves the old content and no temporary file.
	boom := errors.New("boom")
	for _, w := range []func(string, fs.FileMode, func(io.Writer) error) error{Write, WriteFast} {
		err := w(path, 0o644, func(w io.Writer) error { w.Write([]byte("partial")); return boom })
		if !errors.Is(err, boom) {
			t.Fatalf("error %v; want boom", err)
		}
	}
	if b, _ := os.ReadFile(path); string(b) != "second, longer" {
		t.Fatalf("failed write changed the file to %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("leftovers: %v", entries)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "x"), nil, 0o644); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing directory: %v", err)
	}
}

func TestIsTempAndMove(t *testing.T) {
	dir := t.TempDir()
	f, err := createTemp(dir, "video.avi", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("frames"))
	f.Close()
	if !IsTemp(filepath.Base(f.Name())) || IsTemp("video.avi") || IsTemp(".hidden") {
		t.Fatalf("IsTemp wrong for %s", f.Name())
	}
	if err := Move(f.Name(), filepath.Join(dir, "video.avi")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "video.avi")); string(b) != "frames" {
		t.Fatalf("moved content %q", b)
	}
}
