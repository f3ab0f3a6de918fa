package imageops

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

func encodeT(t *testing.T, ext gocv.FileExt, m gocv.Mat) []byte {
	t.Helper()
	buf, err := gocv.IMEncode(ext, m)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...)
}

func TestDecodeFormats(t *testing.T) {
	const rows, cols = 24, 40 // non-square to catch swapped dimensions
	bgr := randomMat(t, rows, cols, gocv.MatTypeCV8UC3, 1)
	defer bgr.Close()
	gray := randomMat(t, rows, cols, gocv.MatTypeCV8UC1, 2)
	defer gray.Close()
	bgra := randomMat(t, rows, cols, gocv.MatTypeCV8UC4, 3)
	defer bgra.Close()
	gray16 := gocv.NewMatWithSize(rows, cols, gocv.MatTypeCV16U)
	defer gray16.Close()
	gray.ConvertToWithParams(&gray16, gocv.MatTypeCV16U, 257, 0) // v*257: high byte is v

	tests := []struct {
		name string
		ext  gocv.FileExt
		src  gocv.Mat
		// lossless: expected BGR value at pixel (0,0) from the source
		want func() [3]uint8
	}{
		{"png color", gocv.PNGFileExt, bgr, func() [3]uint8 { v := bgr.GetVecbAt(0, 0); return [3]uint8{v[0], v[1], v[2]} }},
		{"png gray", gocv.PNGFileExt, gray, func() [3]uint8 { v := gray.GetUCharAt(0, 0); return [3]uint8{v, v, v} }},
		{"png alpha", gocv.PNGFileExt, bgra, func() [3]uint8 { v := bgra.GetVecbAt(0, 0); return [3]uint8{v[0], v[1], v[2]} }},
		{"png 16-bit gray", gocv.PNGFileExt, gray16, func() [3]uint8 { v := gray.GetUCharAt(0, 0); return [3]uint8{v, v, v} }},
		{"bmp color", ".bmp", bgr, func() [3]uint8 { v := bgr.GetVecbAt(0, 0); return [3]uint8{v[0], v[1], v[2]} }},
		{"bmp gray", ".bmp", gray, func() [3]uint8 { v := gray.GetUCharAt(0, 0); return [3]uint8{v, v, v} }},
		{"jpeg color", gocv.JPEGFileExt, bgr, nil},
		{"jpeg gray", gocv.JPEGFileExt, gray, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := encodeT(t, tc.ext, tc.src)
			m, err := Decode(data)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			defer m.Close()
			if m.Type() != gocv.MatTypeCV8UC3 || m.Rows() != rows || m.Cols() != cols {
				t.Fatalf("got %dx%d type %v, want %dx%d 8UC3", m.Cols(), m.Rows(), m.Type(), cols, rows)
			}
			if tc.want != nil {
				v := m.GetVecbAt(0, 0)
				if got := [3]uint8{v[0], v[1], v[2]}; got != tc.want() {
					t.Errorf("pixel (0,0) = %v, want %v", got, tc.want())
				}
			}
			// The same through a file.
			path := filepath.Join(t.TempDir(), "img"+string(tc.ext))
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := ReadFile(path)
			if err != nil {
				t.Fatalf("ReadFile: %v", err)
			}
			defer f.Close()
			if !equalMats(t, m, f) {
				t.Error("ReadFile and Decode differ")
			}
		})
	}
}

func TestReadFileErrors(t *testing.T) {
	src := randomMat(t, 32, 48, gocv.MatTypeCV8UC3, 4)
	defer src.Close()
	png := encodeT(t, gocv.PNGFileExt, src)
	jpg := encodeT(t, gocv.JPEGFileExt, src)
	bmp := encodeT(t, ".bmp", src)
	// Flip bytes in the middle of the PNG's compressed data: CRC mismatch.
	badPNG := append([]byte(nil), png...)
	for i := len(badPNG) / 2; i < len(badPNG)/2+16; i++ {
		badPNG[i] ^= 0x5A
	}

	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		path string
		want error
	}{
		{"missing", filepath.Join(dir, "nope.png"), fs.ErrNotExist},
		{"empty", write("empty.png", nil), ErrEmpty},
		{"text", write("notes.png", []byte("this is not an image\n")), ErrNotImage},
		{"truncated png", write("t.png", png[:len(png)/2]), ErrCorrupt},
		{"corrupt png", write("c.png", badPNG), ErrCorrupt},
		{"truncated jpeg", write("t.jpg", jpg[:len(jpg)*2/3]), ErrCorrupt},
		{"truncated bmp", write("t.bmp", bmp[:len(bmp)-100]), ErrCorrupt},
		{"bmp header only", write("h.bmp", bmp[:20]), ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ReadFile(tc.path)
			if err == nil {
				m.Close()
				t.Fatal("ReadFile succeeded, want error")
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %q does not match %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}

	t.Run("directory", func(t *testing.T) {
		m, err := ReadFile(dir)
		if err == nil {
			m.Close()
			t.Fatal("ReadFile of a directory succeeded")
		}
	})
	t.Run("unreadable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads files whatever their mode")
		}
		p := write("locked.png", png)
		if err := os.Chmod(p, 0); err != nil {
			t.Fatal(err)
		}
		m, err := ReadFile(p)
		if err == nil {
			m.Close()
			t.Fatal("ReadFile of an unreadable file succeeded")
		}
		if !errors.Is(err, fs.ErrPermission) {
			t.Errorf("error %q is not a permission error", err)
		}
	})
}

// TestDecodeLowBits: 16-bit images from cameras that keep 10 or 12 bits in
// the low bits are refused with the fix; full-range 16-bit images, even a
// dark one, still decode.
func TestDecodeLowBits(t *testing.T) {
	gray := randomMat(t, 20, 30, gocv.MatTypeCV8UC1, 5)
	defer gray.Close()
	for _, tc := range []struct {
		name  string
		scale float64 // 16-bit value per 8-bit value
		want  error
	}{
		{"full range", 257, nil},
		{"12-bit in the low bits", 4095.0 / 255, ErrLowBits},
		{"10-bit in the low bits", 1023.0 / 255, ErrLowBits},
		{"full range, dim (values up to 5000)", 5000.0 / 255, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g16 := gocv.NewMat()
			defer g16.Close()
			gray.ConvertToWithParams(&g16, gocv.MatTypeCV16U, float32(tc.scale), 0)
			m, err := Decode(encodeT(t, gocv.PNGFileExt, g16))
			if err == nil {
				m.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode: %v, want %v", err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), "high bits") {
				t.Errorf("error %q does not say what to do", err)
			}
		})
	}
}
