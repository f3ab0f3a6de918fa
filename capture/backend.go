package capture

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"gocv.io/x/gocv"
)

// capturer is the part of gocv.VideoCapture the grabber uses; tests swap in
// fakes that hang or fail on cue.
type capturer interface {
	// Read fills m with the next frame; false means the stream ended or
	// broke.
	Read(m *gocv.Mat) bool
	// FPS is the stream's nominal frame rate, 0 when unknown.
	FPS() float64
	Close() error
}

// opener opens a backend for a parsed URI.
type opener func(kind Kind, target string) (capturer, error)

// backend is a reader registered (registerBackend, in its file's init) for
// targets OpenCV does not read; everything else goes through openGoCV.
type backend struct {
	name string
	// claims reports whether the backend reads kind/target.
	claims func(kind Kind, target string) bool
	open   func(cfg Config, target string) (capturer, error)
	// onDemand: the camera takes a frame only when told to. Its capturer
	// implements triggerer, and each Next of the source fires it once.
	onDemand bool
}

var backends []backend

func registerBackend(b backend) { backends = append(backends, b) }

// backendFor is the registered backend that claims kind/target, or nil.
func backendFor(kind Kind, target string) *backend {
	for i := range backends {
		if backends[i].claims(kind, target) {
			return &backends[i]
		}
	}
	return nil
}

// triggerer is a capturer of a camera that takes a frame only when told to.
// Trigger may be called from another goroutine than Read, also while Close
// runs; it returns the time just before the camera was told.
type triggerer interface {
	Trigger() (time.Time, error)
}

// frameTimer is a capturer that knows when the frame it read last was
// taken (better than when Read returned).
type frameTimer interface{ FrameTime() time.Time }

// errReporter is a capturer that can say why its last Read failed.
type errReporter interface{ Err() error }

// dropReporter is an on-demand capturer whose Read can receive a frame it
// cannot deliver (incomplete, unreadable): Dropped returns why, once, so
// that the Next waiting for that frame fails at once instead of timing out.
type dropReporter interface{ Dropped() error }

// posReader is a capturer that can say the source's time of the frame it
// read last (CAP_PROP_POS_MSEC): see sourceClock.
type posReader interface{ PosMsec() float64 }

type gocvCapture struct{ vc *gocv.VideoCapture }

func (g gocvCapture) PosMsec() float64      { return g.vc.Get(gocv.VideoCapturePosMsec) }
func (g gocvCapture) Read(m *gocv.Mat) bool { return g.vc.Read(m) }
func (g gocvCapture) FPS() float64          { return g.vc.Get(gocv.VideoCaptureFPS) }
func (g gocvCapture) Close() error          { return g.vc.Close() }

// openGoCV opens kind/target with the OpenCV backend suited to it. RTSP over
// TCP, often steadier than UDP on a factory network, is chosen with the
// environment variable OPENCV_FFMPEG_CAPTURE_OPTIONS="rtsp_transport;tcp".
// Network streams get timeout as FFmpeg's open and read timeouts.
func openGoCV(kind Kind, target string, timeout time.Duration) (capturer, error) {
	var (
		vc  *gocv.VideoCapture
		err error
	)
	switch kind {
	case KindDevice:
		if n, convErr := strconv.Atoi(target); convErr == nil {
			vc, err = gocv.VideoCaptureDeviceWithAPI(n, gocv.VideoCaptureV4L2)
		} else {
			vc, err = gocv.VideoCaptureFileWithAPI(target, gocv.VideoCaptureV4L2)
		}
	case KindFile:
		// OpenCV says only "cannot open"; say whether the file is there.
		if _, statErr := os.Stat(target); statErr != nil {
			return nil, fmt.Errorf("opening video file: %w", statErr)
		}
		vc, err = gocv.VideoCaptureFile(target)
	case KindStream:
		c, err := openFFmpeg(target, timeout)
		if err != nil {
			return nil, fmt.Errorf("opening %s %s: %w", kind, redact(target), err)
		}
		return c, nil
	case KindGStreamer, KindGigE:
		vc, err = gocv.VideoCaptureFileWithAPI(target, gocv.VideoCaptureGstreamer)
	default:
		return nil, fmt.Errorf("capture: no video backend for a %s source", kind)
	}
	if err == nil && !vc.IsOpened() {
		err = errors.New("backend reports it is not open")
	}
	if err != nil {
		if vc != nil {
			vc.Close()
		}
		// gocv's message repeats the URI, password included; name it
		// ourselves instead.
		return nil, fmt.Errorf("opening %s %s: OpenCV could not open it", kind, redact(target))
	}
	return gocvCapture{vc: vc}, nil
}
