package imageops

import (
	"fmt"
	"io"
	"os"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/internal/durable"
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
// file or the complete new one, never a partial write, even across a crash
// (internal/durable). The file gets mode 0644 less the umask.
func WriteFileAtomic(path string, data []byte) error {
	return durable.WriteFile(path, data, 0o644)
}

// WriteAtomic is WriteFileAtomic for content produced by a function writing
// to the temporary file (for example an encoder streaming into it).
func WriteAtomic(path string, write func(*os.File) error) error {
	return durable.Write(path, 0o644, func(w io.Writer) error { return write(w.(*os.File)) })
}

// SyncFileInto moves an already written file at tmp to path durably (see
// durable.Move); tmp must be in the same directory as path.
func SyncFileInto(tmp, path string) error { return durable.Move(tmp, path) }
