package capture

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrBusy wraps a source another process holds: a second reader of a
// camera device would steal its frames (or fail in the driver), and a
// second reader of a hot folder would take its parts.
var ErrBusy = errors.New("capture source in use by another process")

// sourceLock is an advisory lock (flock) on the device node or the hot
// folder, held while the source is open, so `calibrate --camera` and the
// running daemon of the same camera cannot both read it. Streams, video
// files and GStreamer pipelines have no file to lock: several readers are
// harmless there, or the driver (Argus) refuses the second one itself.
type sourceLock struct{ f *os.File }

// lockSource locks the file behind kind/target. A device node or folder
// that does not exist yet is not locked: the source retries until it
// appears, and nobody else can be reading it now.
func lockSource(kind Kind, target string) (*sourceLock, error) {
	var path string
	switch kind {
	case KindDevice:
		path = target
		if filepath.Dir(target) != "/dev" {
			path = "/dev/video" + target // an index, as OpenCV's V4L2 backend reads it
		}
	case KindHotFolder:
		path = target
	default:
		return &sourceLock{}, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &sourceLock{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("capture: opening %s to lock it: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked by another inspectd (the running service of this camera?)", ErrBusy, path)
		}
		return nil, fmt.Errorf("capture: locking %s: %w", path, err)
	}
	return &sourceLock{f: f}, nil
}

// release is safe to call more than once.
func (l *sourceLock) release() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Close() // closing the last descriptor drops the flock
	l.f = nil
}
