package imageops

import (
	"errors"
	"fmt"
	"io"
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
	// ErrLowBits is a 16-bit image whose values all lie below 4096: 12- or
	// 10-bit camera data in the low bits, which scaled to 8 bits is black.
	ErrLowBits = errors.New("16-bit image with data in its low bits only")
)

// ReadFile reads and decodes an image file; see Decode for the result. A
// file above the size limit (CurrentLimits) is refused from its size alone,
// before it is read.
func ReadFile(path string) (gocv.Mat, error) {
	data, err := ReadLimited(path, CurrentLimits())
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("read image %s: %w", path, err)
	}
	m, err := Decode(data)
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("read image %s: %w", path, err)
	}
	return m, nil
}

// ReadLimited reads a file of at most lim.MaxBytes (ErrTooLarge beyond,
// without reading it); operating-system errors keep their reason only, as
// the caller names the path.
func ReadLimited(path string, lim Limits) ([]byte, error) {
	lim = lim.withDefaults()
	f, err := os.Open(path)
	if err != nil {
		return nil, unwrapPath(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, unwrapPath(err)
	}
	if fi.Size() > lim.MaxBytes {
		return nil, fmt.Errorf("%w: file of %d bytes, limit %d", ErrTooLarge, fi.Size(), lim.MaxBytes)
	}
	// The file may grow after Stat: never read more than the limit.
	data, err := io.ReadAll(io.LimitReader(f, lim.MaxBytes+1))
	if err != nil {
		return nil, unwrapPath(err)
	}
	if int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: file grew beyond the limit of %d bytes while read", ErrTooLarge, lim.MaxBytes)
	}
	return data, nil
}

// unwrapPath drops the path os errors repeat, keeping the reason.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Decode decodes a PNG, JPEG or BMP image to 8-bit 3-channel BGR, whatever
// the stored format: grayscale is expanded, 16-bit is scaled to 8-bit and
// alpha is dropped, so everything downstream handles one pixel format. The
// data first passes Check with CurrentLimits: truncated files and images
// above the limits are refused before any pixel is decoded.
func Decode(data []byte) (gocv.Mat, error) {
	return DecodeLimited(data, CurrentLimits())
}

// DecodeLimited is Decode with explicit limits.
func DecodeLimited(data []byte, lim Limits) (gocv.Mat, error) {
	info, err := Check(data, lim)
	if err != nil {
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
		m8, err := to8UC3(m)
		m.Close()
		if err != nil {
			return gocv.Mat{}, err
		}
		m = m8
	}
	if info.Wide {
		// Scaled by 1/256, 12-bit data tops out at 16 of 255: the part
		// would be scored as a black image, so it is refused with the fix.
		flat := m.Reshape(1, 0)
		_, top, _, _ := gocv.MinMaxLoc(flat)
		flat.Close()
		if top <= 16 {
			m.Close()
			return gocv.Mat{}, fmt.Errorf("%w: its brightest value is %.0f of 255 after scaling to 8 bits; save the camera's 10- or 12-bit images with the data in the high bits (or as 8-bit)", ErrLowBits, top)
		}
	}
	return m, nil
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
