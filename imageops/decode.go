package imageops

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"gocv.io/x/gocv"
)

// Reasons an image cannot be decoded; match them with errors.Is. A missing
// or unreadable file gives the operating system's error (fs.ErrNotExist,
// fs.ErrPermission, ...) instead.
var (
	ErrEmpty    = errors.New("empty file")
	ErrNotImage = errors.New("not a PNG, JPEG or BMP image")
	ErrCorrupt  = errors.New("corrupt or truncated image")
)

// ReadFile reads and decodes an image file; see Decode for the result.
func ReadFile(path string) (gocv.Mat, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		// os errors repeat the path; keep only the reason after ours.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return gocv.Mat{}, fmt.Errorf("read image %s: %w", path, err)
	}
	m, err := Decode(data)
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("read image %s: %w", path, err)
	}
	return m, nil
}

// Decode decodes a PNG, JPEG or BMP image to 8-bit 3-channel BGR, whatever
// the stored format: grayscale is expanded, 16-bit is scaled to 8-bit and
// alpha is dropped, so everything downstream handles one pixel format.
//
// Truncated files are rejected rather than decoded: libjpeg would otherwise
// fill the missing rows with grey and a half-received frame would be scored
// as a defect.
func Decode(data []byte) (gocv.Mat, error) {
	if len(data) == 0 {
		return gocv.Mat{}, ErrEmpty
	}
	if err := checkComplete(data); err != nil {
		return gocv.Mat{}, err
	}
	m, err := gocv.IMDecode(data, gocv.IMReadColor)
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("decode: %w", err)
	}
	if m.Empty() {
		m.Close()
		return gocv.Mat{}, ErrCorrupt
	}
	if m.Type() != gocv.MatTypeCV8UC3 {
		// IMReadColor already promises 8UC3; this guards other OpenCV builds.
		defer m.Close()
		return to8UC3(m)
	}
	return m, nil
}

var (
	pngMagic  = []byte("\x89PNG\r\n\x1a\n")
	pngEnd    = []byte("IEND")
	jpegMagic = []byte{0xFF, 0xD8, 0xFF}
	jpegEnd   = []byte{0xFF, 0xD9}
)

// checkComplete recognises the format by its signature and checks that the
// file is not cut short, which the decoders do not reliably report.
func checkComplete(data []byte) error {
	switch {
	case bytes.HasPrefix(data, pngMagic):
		// IEND is the last chunk; allow a little trailing junk.
		if !bytes.Contains(tail(data, 64), pngEnd) {
			return fmt.Errorf("%w: PNG has no IEND chunk", ErrCorrupt)
		}
	case bytes.HasPrefix(data, jpegMagic):
		// Entropy-coded data never contains FF D9 (FF is byte-stuffed), so
		// an end-of-image marker near the end means the scan is complete. The
		// window tolerates padding some cameras append after it.
		if !bytes.Contains(tail(data, 1024), jpegEnd) {
			return fmt.Errorf("%w: JPEG has no end-of-image marker", ErrCorrupt)
		}
	case len(data) >= 2 && data[0] == 'B' && data[1] == 'M':
		return checkBMP(data)
	default:
		return ErrNotImage
	}
	return nil
}

func tail(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	return b[len(b)-n:]
}

// checkBMP compares the sizes the BMP header declares with the bytes present.
func checkBMP(data []byte) error {
	const fileHeader = 14
	if len(data) < fileHeader+16 {
		return fmt.Errorf("%w: BMP header cut short", ErrCorrupt)
	}
	declared := binary.LittleEndian.Uint32(data[2:6])
	if declared != 0 && uint64(len(data)) < uint64(declared) {
		return fmt.Errorf("%w: BMP declares %d bytes, file has %d", ErrCorrupt, declared, len(data))
	}
	offset := uint64(binary.LittleEndian.Uint32(data[10:14]))
	dib := binary.LittleEndian.Uint32(data[14:18])
	if dib < 40 || len(data) < fileHeader+40 {
		return nil // old OS/2 headers: leave it to the decoder
	}
	w := uint64(int64(int32(binary.LittleEndian.Uint32(data[18:22]))))
	h := int64(int32(binary.LittleEndian.Uint32(data[22:26])))
	if h < 0 {
		h = -h
	}
	bpp := uint64(binary.LittleEndian.Uint16(data[28:30]))
	compression := binary.LittleEndian.Uint32(data[30:34])
	if compression != 0 { // only uncompressed rows have a computable size
		return nil
	}
	row := (bpp*w + 31) / 32 * 4
	if need := offset + row*uint64(h); uint64(len(data)) < need {
		return fmt.Errorf("%w: BMP pixel data needs %d bytes, file has %d", ErrCorrupt, need, len(data))
	}
	return nil
}

// to8UC3 converts any 1-, 3- or 4-channel Mat of depth 8U or 16U to 8UC3.
func to8UC3(m gocv.Mat) (gocv.Mat, error) {
	src := m
	if m.Type()&7 == gocv.MatTypeCV16U {
		src = gocv.NewMat()
		defer src.Close()
		m.ConvertToWithParams(&src, gocv.MatType(gocv.MatTypeCV8U+gocv.MatType((m.Channels()-1)<<3)), 1.0/256, 0)
	} else if m.Type()&7 != gocv.MatTypeCV8U {
		return gocv.Mat{}, fmt.Errorf("%w: unsupported pixel depth (type %v)", ErrCorrupt, m.Type())
	}
	out := gocv.NewMat()
	switch src.Channels() {
	case 1:
		gocv.CvtColor(src, &out, gocv.ColorGrayToBGR)
	case 3:
		src.CopyTo(&out)
	case 4:
		gocv.CvtColor(src, &out, gocv.ColorBGRAToBGR)
	default:
		out.Close()
		return gocv.Mat{}, fmt.Errorf("%w: %d channels", ErrCorrupt, src.Channels())
	}
	return out, nil
}
