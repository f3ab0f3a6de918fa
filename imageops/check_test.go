package imageops

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

// pngHeader is a PNG whose IHDR declares w x h 8-bit RGB pixels, followed by
// junk IDAT and IEND: the header alone must decide, as for a 389 KB PNG that
// decodes to 20000 x 20000 pixels.
func pngHeader(w, h uint32) []byte {
	chunk := func(typ string, data []byte) []byte {
		var b bytes.Buffer
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
		return b.Bytes()
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	out := append([]byte(nil), pngMagic...)
	out = append(out, chunk("IHDR", ihdr)...)
	out = append(out, chunk("IDAT", bytes.Repeat([]byte{0x78}, 64))...)
	return append(out, chunk("IEND", nil)...)
}

// jpegHeader is a JPEG with only a JFIF marker and a baseline SOF declaring w x h.
func jpegHeader(w, h uint16) []byte {
	b := []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
		0xFF, 0xC0, 0, 17, 8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), 3,
		1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0}
	return append(b, 0xFF, 0xD9)
}

// bmpHeader is an uncompressed 24-bit BMP header declaring w x h, with as
// many pixel bytes as given.
func bmpHeader(w, h int32, pixels int) []byte {
	b := make([]byte, 54+pixels)
	b[0], b[1] = 'B', 'M'
	binary.LittleEndian.PutUint32(b[2:], uint32(len(b)))
	binary.LittleEndian.PutUint32(b[10:], 54)
	binary.LittleEndian.PutUint32(b[14:], 40)
	binary.LittleEndian.PutUint32(b[18:], uint32(w))
	binary.LittleEndian.PutUint32(b[22:], uint32(h))
	binary.LittleEndian.PutUint16(b[26:], 1)
	binary.LittleEndian.PutUint16(b[28:], 24)
	return b
}

func TestCheckBoundsBeforeDecoding(t *testing.T) {
	small := randomMat(t, 30, 40, gocv.MatTypeCV8UC3, 7)
	defer small.Close()
	png := encodeT(t, gocv.PNGFileExt, small)
	jpg := encodeT(t, gocv.JPEGFileExt, small)
	bmp := encodeT(t, ".bmp", small)
	small16 := gocv.NewMat()
	defer small16.Close()
	small.ConvertToWithParams(&small16, gocv.MatTypeCV16UC3, 257, 0)
	png16 := encodeT(t, gocv.PNGFileExt, small16)
	def := Limits{}
	cases := []struct {
		name string
		data []byte
		lim  Limits
		want error
		info Info
	}{
		{"png 40x30", png, def, nil, Info{Format: "png", Width: 40, Height: 30}},
		{"jpeg 40x30", jpg, def, nil, Info{Format: "jpeg", Width: 40, Height: 30}},
		{"16-bit png 40x30", png16, def, nil, Info{Format: "png", Width: 40, Height: 30, Wide: true}},
		{"bmp 40x30", bmp, def, nil, Info{Format: "bmp", Width: 40, Height: 30}},
		{"png at the pixel limit", png, Limits{MaxPixels: 1200}, nil, Info{Format: "png", Width: 40, Height: 30}},
		{"png one pixel over", png, Limits{MaxPixels: 1199}, ErrTooLarge, Info{}},
		{"file over the byte limit", png, Limits{MaxBytes: int64(len(png) - 1)}, ErrTooLarge, Info{}},
		{"png 20000x20000 header", pngHeader(20000, 20000), def, ErrTooLarge, Info{}},
		{"png 2^31-1 square header", pngHeader(1<<31-1, 1<<31-1), def, ErrCorrupt, Info{}}, // Go's decoder refuses: overflow
		{"png zero width", pngHeader(0, 10), def, ErrCorrupt, Info{}},
		{"jpeg 65535x65535 header", jpegHeader(65535, 65535), def, ErrTooLarge, Info{}},
		{"jpeg 8000x6000 header (48 MP)", jpegHeader(8000, 6000), def, nil, Info{Format: "jpeg", Width: 8000, Height: 6000}},
		{"bmp 30000x30000 header", bmpHeader(30000, 30000, 0), def, ErrCorrupt, Info{}}, // pixel data missing
		{"bmp 30000x30000 header, compressed", func() []byte {
			b := bmpHeader(30000, -30000, 0)
			binary.LittleEndian.PutUint32(b[30:], 1) // RLE8: size not computable
			return b
		}(), def, ErrTooLarge, Info{}},
		{"bmp negative width", bmpHeader(-5, 5, 64), def, ErrCorrupt, Info{}},
		{"empty", nil, def, ErrEmpty, Info{}},
		{"text", []byte("hello"), def, ErrNotImage, Info{}},
		{"png cut short", png[:len(png)/2], def, ErrCorrupt, Info{}},
		{"jpeg cut short", jpg[:len(jpg)/2], def, ErrCorrupt, Info{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			info, err := Check(c.data, c.lim)
			if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("Check: %v; want %v", err, c.want)
			}
			if info != c.info {
				t.Errorf("info %+v; want %+v", info, c.info)
			}
			// Decode applies the same check, before any pixel is decoded.
			old := CurrentLimits()
			SetLimits(c.lim)
			defer SetLimits(old)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			m, err := Decode(c.data)
			runtime.ReadMemStats(&after)
			if err == nil {
				m.Close()
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("Decode: %v; want %v", err, c.want)
			}
			if c.want != nil && after.TotalAlloc-before.TotalAlloc > 1<<20 {
				t.Errorf("refusing allocated %d bytes", after.TotalAlloc-before.TotalAlloc)
			}
		})
	}
}

// ReadFile refuses a file above the byte limit from its size alone.
func TestReadFileRefusesLargeFileUnread(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.png")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(pngMagic)
	f.Truncate(DefaultMaxBytes + 1) // sparse: costs no disk
	f.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = ReadFile(path)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), path) {
		t.Fatalf("ReadFile: %v; want ErrTooLarge naming the file", err)
	}
	if a := after.TotalAlloc - before.TotalAlloc; a > 1<<20 {
		t.Errorf("refusing read %d bytes into memory", a)
	}
}

// FuzzDecode: arbitrary bytes are refused with an error or decoded within the
// limits, never a panic or a crash inside OpenCV. Seeds: testdata/fuzz/FuzzDecode
// and small images of each format made here. Run with
// go test -run '^$' -fuzz FuzzDecode -fuzztime 30s ./imageops/
func FuzzDecode(f *testing.F) {
	m := gocv.NewMatWithSize(6, 9, gocv.MatTypeCV8UC3)
	defer m.Close()
	for _, ext := range []gocv.FileExt{gocv.PNGFileExt, gocv.JPEGFileExt, ".bmp"} {
		buf, err := gocv.IMEncode(ext, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte(nil), buf.GetBytes()...))
		buf.Close()
	}
	f.Add(pngHeader(20000, 20000))
	f.Add(jpegHeader(300, 200))
	f.Add(bmpHeader(4, 4, 64))
	lim := Limits{MaxPixels: 1 << 20, MaxBytes: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, cerr := Check(data, lim)
		m, err := DecodeLimited(data, lim)
		if err != nil {
			return
		}
		defer m.Close()
		if cerr != nil {
			t.Fatalf("Check refused (%v) what Decode accepted", cerr)
		}
		if m.Type() != gocv.MatTypeCV8UC3 || int64(m.Rows())*int64(m.Cols()) > lim.MaxPixels {
			t.Fatalf("decoded %dx%d type %v (header %+v)", m.Cols(), m.Rows(), m.Type(), info)
		}
	})
}
