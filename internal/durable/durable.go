// Package durable writes files so that readers see the old content or the
// complete new one, never a partial write, also across a crash or power cut:
// the data goes to a temporary file in the same directory, is synced, renamed
// over the target, and the directory is synced so the rename persists.
//
// The file mode is the caller's, with the process umask applied as for any
// created file (the temporary file is created with that mode, not chmod-ed
// afterwards): under systemd's UMask=0027 a model written with 0644 ends up
// 0640.
package durable

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// tmpMarker is part of every temporary name: "." + base + tmpMarker + random.
const tmpMarker = ".tmp-"

// IsTemp reports whether a directory entry is a temporary file left by an
// interrupted write (safe to delete at start).
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, tmpMarker)
}

// WriteFile writes data to path atomically and durably with mode perm
// (before umask).
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write is WriteFile for content produced by a function writing to the
// temporary file (an encoder streaming into it, for example).
func Write(path string, perm fs.FileMode, write func(io.Writer) error) error {
	return replace(path, perm, true, write)
}

// WriteFast is Write without the syncs: still atomic for readers, but an
// entry may be lost (never half-written) in a power cut. For caches whose
// content can be computed again.
func WriteFast(path string, perm fs.FileMode, write func(io.Writer) error) error {
	return replace(path, perm, false, write)
}

func replace(path string, perm fs.FileMode, sync bool, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := createTemp(dir, base, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("write %s: sync: %w", path, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if !sync {
		return nil
	}
	return SyncDir(dir)
}

// createTemp is os.CreateTemp with a mode: the kernel applies the umask.
func createTemp(dir, base string, perm fs.FileMode) (*os.File, error) {
	var rnd [6]byte
	for range 100 {
		rand.Read(rnd[:])
		name := filepath.Join(dir, "."+base+tmpMarker+hex.EncodeToString(rnd[:]))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("creating a temporary file in %s: too many collisions", dir)
}

// Move renames an already written file at tmp to path durably: sync the
// file, rename, sync the directory. For writers that need a file name
// rather than an io.Writer (OpenCV's VideoWriter); tmp must be in the same
// directory as path.
func Move(tmp, path string) error {
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir makes renames and creations in dir durable. Filesystems that
// cannot sync a directory are not an error: the rename already happened.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
