package capture

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// A source another reader holds (the daemon, while `calibrate --camera`
// opens the same camera) is refused with ErrBusy until it is closed; a
// source without a file to lock, or whose file does not exist yet, opens.
func TestSourceLock(t *testing.T) {
	hot := t.TempDir()
	cases := []struct {
		name     string
		uri      string
		lockable bool
	}{
		{"hot folder", "dir:" + hot, true},
		{"device node", "/dev/null", true}, // a character device, like /dev/video0
		{"missing device", "/dev/video-absent-" + filepath.Base(hot), false},
		{"stream", "rtsp://127.0.0.1:1/x", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{URI: c.uri}
			first, err := Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			second, err := Open(context.Background(), cfg)
			if !c.lockable {
				if err != nil {
					t.Fatalf("second open: %v; want no lock on %s", err, c.uri)
				}
				second.Close()
				first.Close()
				return
			}
			if !errors.Is(err, ErrBusy) {
				if second != nil {
					second.Close()
				}
				t.Fatalf("second open while the first is open: %v; want ErrBusy", err)
			}
			first.Close()
			third, err := Open(context.Background(), cfg)
			if err != nil {
				t.Fatalf("open after the first closed: %v", err)
			}
			third.Close()
		})
	}
}
