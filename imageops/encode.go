package imageops

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"gocv.io/x/gocv"
)

// EncodeJPEG encodes m (8-bit, 1 or 3 channels) as JPEG at quality 1..100.
func EncodeJPEG(m gocv.Mat, quality int) ([]byte, error) {
	if quality < 1 || quality > 100 {
		return nil, fmt.Errorf("encode JPEG: quality %d outside 1..100", quality)
	}
	return encode(gocv.JPEGFileExt, m, []int{gocv.IMWriteJpegQuality, quality})
}

// EncodePNG encodes m as PNG (lossless; 8- or 16-bit, 1, 3 or 4 channels).
func EncodePNG(m gocv.Mat) ([]byte, error) {
	// Level 1: the size gain of higher levels is small next to their cost.
	return encode(gocv.PNGFileExt, m, []int{gocv.IMWritePngCompression, 1})
}

func encode(ext gocv.FileExt, m gocv.Mat, params []int) ([]byte, error) {
	if m.Empty() {
		return nil, fmt.Errorf("encode %s: empty image", ext)
	}
	buf, err := gocv.IMEncodeWithParams(ext, m, params)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", ext, err)
	}
	defer buf.Close()
	if buf.Len() == 0 {
		return nil, fmt.Errorf("encode %s: encoder produced nothing for a %dx%d image of type %v", ext, m.Cols(), m.Rows(), m.Type())
	}
	// GetBytes aliases the native buffer, which Close frees.
	return append([]byte(nil), buf.GetBytes()...), nil
}

// WriteFileAtomic writes data to path so that readers see either the old
// file or the complete new one, never a partial write, even across a crash:
// the data goes to a temporary file in the same directory, is synced, and is
// renamed over path; the directory is then synced so the rename persists.
// The file gets mode 0644.
func WriteFileAtomic(path string, data []byte) error {
	return WriteAtomic(path, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// WriteAtomic is WriteFileAtomic for content produced by a function writing
// to the temporary file (for example an encoder streaming into it).
func WriteAtomic(path string, write func(*os.File) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
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
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

// SyncFileInto moves an already written file at tmp to path durably: fsync
// the file, rename it, fsync the directory. For writers that need a file
// name rather than an *os.File (OpenCV's VideoWriter); tmp must be in the
// same directory as path.
func SyncFileInto(tmp, path string) error {
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
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	// Some filesystems cannot fsync a directory; the rename already happened.
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
