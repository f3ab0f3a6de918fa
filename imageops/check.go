package imageops

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // DecodeConfig reads JPEG headers
	_ "image/png"  // and PNG headers
	"sync/atomic"
)

// ErrTooLarge marks an image refused before decoding because its file or its
// declared dimensions exceed the limits: decoding it could exhaust memory (a
// 389 KB PNG can declare 20000 x 20000 pixels, 1.2 GB decoded).
var ErrTooLarge = errors.New("image too large")

// Default limits: a 50-megapixel frame is larger than any industrial camera
// here gives and still fits a 1 GB service (decoded BGR 150 MB, inspection
// peak about 0.5 GB); 64 MB holds such a frame as PNG.
const (
	DefaultMaxPixels = 50_000_000
	DefaultMaxBytes  = 64 << 20
)

// Limits bound an image before it is decoded. Zero fields take the defaults.
type Limits struct {
	MaxPixels int64 // width x height
	MaxBytes  int64 // encoded file size
}

func (l Limits) withDefaults() Limits {
	if l.MaxPixels <= 0 {
		l.MaxPixels = DefaultMaxPixels
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	return l
}

var limits atomic.Pointer[Limits]

// SetLimits sets the limits Decode and ReadFile apply (commands set them once
// from the settings at start).
func SetLimits(l Limits) {
	l = l.withDefaults()
	limits.Store(&l)
}

// CurrentLimits are the limits Decode and ReadFile apply.
func CurrentLimits() Limits {
	if l := limits.Load(); l != nil {
		return *l
	}
	return Limits{}.withDefaults()
}

// Info is what an image's header says.
type Info struct {
	Format        string // "png", "jpeg" or "bmp"
	Width, Height int
	// Wide says the samples are 16-bit (a PNG's), which Decode scales to 8.
	Wide bool
}

// Check is the one test every encoded image passes before it is decoded
// (files given to score and calibrate, hot-folder files, anything read by
// Decode): it recognises the format by its signature, refuses a file cut
// short (ErrCorrupt: decoders fill missing rows with grey rather than fail),
// reads the dimensions from the header and refuses an image above the limits
// (ErrTooLarge), all without decoding pixels.
func Check(data []byte, lim Limits) (Info, error) {
	lim = lim.withDefaults()
	if len(data) == 0 {
		return Info{}, ErrEmpty
	}
	if int64(len(data)) > lim.MaxBytes {
		return Info{}, fmt.Errorf("%w: file of %d bytes, limit %d", ErrTooLarge, len(data), lim.MaxBytes)
	}
	var info Info
	switch {
	case bytes.HasPrefix(data, pngMagic):
		// IEND is the last chunk; allow a little trailing junk.
		if !bytes.Contains(tail(data, 64), pngEnd) {
			return Info{}, fmt.Errorf("%w: PNG has no IEND chunk", ErrCorrupt)
		}
		info.Format = "png"
	case bytes.HasPrefix(data, jpegMagic):
		// Entropy-coded data never contains FF D9 (FF is byte-stuffed), so
		// an end-of-image marker near the end means the scan is complete. The
		// window tolerates padding some cameras append after it.
		if !bytes.Contains(tail(data, 1024), jpegEnd) {
			return Info{}, fmt.Errorf("%w: JPEG has no end-of-image marker", ErrCorrupt)
		}
		info.Format = "jpeg"
	case len(data) >= 2 && data[0] == 'B' && data[1] == 'M':
		w, h, err := checkBMP(data)
		if err != nil {
			return Info{}, err
		}
		info.Format, info.Width, info.Height = "bmp", w, h
	default:
		return Info{}, ErrNotImage
	}
	if info.Format != "bmp" {
		cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			return Info{}, fmt.Errorf("%w: %s header: %v", ErrCorrupt, info.Format, err)
		}
		info.Width, info.Height = cfg.Width, cfg.Height
		switch cfg.ColorModel {
		case color.Gray16Model, color.RGBA64Model, color.NRGBA64Model:
			info.Wide = true
		}
	}
	if info.Width <= 0 || info.Height <= 0 {
		return Info{}, fmt.Errorf("%w: %s header declares %dx%d pixels", ErrCorrupt, info.Format, info.Width, info.Height)
	}
	if px := int64(info.Width) * int64(info.Height); px > lim.MaxPixels {
		return Info{}, fmt.Errorf("%w: %dx%d pixels (%.1f MP), limit %.1f MP", ErrTooLarge, info.Width, info.Height, float64(px)/1e6, float64(lim.MaxPixels)/1e6)
	}
	return info, nil
}

var (
	pngMagic  = []byte("\x89PNG\r\n\x1a\n")
	pngEnd    = []byte("IEND")
	jpegMagic = []byte{0xFF, 0xD8, 0xFF}
	jpegEnd   = []byte{0xFF, 0xD9}
)

func tail(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	return b[len(b)-n:]
}

// checkBMP reads a BMP's dimensions and compares the sizes its header
// declares with the bytes present.
func checkBMP(data []byte) (w, h int, err error) {
	const fileHeader = 14
	if len(data) < fileHeader+12 {
		return 0, 0, fmt.Errorf("%w: BMP header cut short", ErrCorrupt)
	}
	declared := binary.LittleEndian.Uint32(data[2:6])
	if declared != 0 && uint64(len(data)) < uint64(declared) {
		return 0, 0, fmt.Errorf("%w: BMP declares %d bytes, file has %d", ErrCorrupt, declared, len(data))
	}
	offset := uint64(binary.LittleEndian.Uint32(data[10:14]))
	dib := binary.LittleEndian.Uint32(data[14:18])
	if dib == 12 { // OS/2 BITMAPCOREHEADER: 16-bit dimensions
		return int(binary.LittleEndian.Uint16(data[18:20])), int(binary.LittleEndian.Uint16(data[20:22])), nil
	}
	if dib < 40 || len(data) < fileHeader+40 {
		return 0, 0, fmt.Errorf("%w: BMP header of %d bytes cut short or unknown", ErrCorrupt, dib)
	}
	w64 := int64(int32(binary.LittleEndian.Uint32(data[18:22])))
	h64 := int64(int32(binary.LittleEndian.Uint32(data[22:26])))
	if h64 < 0 {
		h64 = -h64 // top-down rows
	}
	if w64 <= 0 || h64 <= 0 {
		return 0, 0, fmt.Errorf("%w: BMP header declares %dx%d pixels", ErrCorrupt, w64, h64)
	}
	bpp := uint64(binary.LittleEndian.Uint16(data[28:30]))
	compression := binary.LittleEndian.Uint32(data[30:34])
	if compression == 0 { // only uncompressed rows have a computable size
		row := (bpp*uint64(w64) + 31) / 32 * 4
		if need := offset + row*uint64(h64); uint64(len(data)) < need {
			return 0, 0, fmt.Errorf("%w: BMP pixel data needs %d bytes, file has %d", ErrCorrupt, need, len(data))
		}
	}
	return int(w64), int(h64), nil
}
