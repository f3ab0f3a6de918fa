package capture

/*
#cgo !windows pkg-config: opencv4
#cgo CXXFLAGS: --std=c++11
#include <stdlib.h>
#include "ffmpeg.h"
*/
import "C"

import (
	"errors"
	"time"
	"unsafe"

	"gocv.io/x/gocv"
)

// ffmpegCapture reads a network stream through OpenCV's FFmpeg back end with
// its open and read timeouts set. gocv opens with OpenCV's defaults (30 s
// each), so a camera that accepts the connection and then says nothing kept
// a reader stuck in the driver for 30 s, long after the stall watchdog had
// given up on it; with the timeouts at the stall timeout the driver itself
// returns and the reader exits.
type ffmpegCapture struct{ p C.InspectdCapture }

func openFFmpeg(uri string, timeout time.Duration) (capturer, error) {
	ms := C.int(max(min(timeout.Milliseconds(), 1<<30), 1))
	cs := C.CString(uri)
	defer C.free(unsafe.Pointer(cs))
	p := C.inspectd_ffmpeg_open(cs, ms, ms)
	if p == nil {
		return nil, errors.New("OpenCV's FFmpeg back end could not open it")
	}
	return &ffmpegCapture{p: p}, nil
}

func (f *ffmpegCapture) Read(m *gocv.Mat) bool {
	return C.inspectd_capture_read(f.p, unsafe.Pointer(m.Ptr())) != 0
}

func (f *ffmpegCapture) FPS() float64 {
	return float64(C.inspectd_capture_get(f.p, C.int(gocv.VideoCaptureFPS)))
}

func (f *ffmpegCapture) Close() error {
	if f.p != nil {
		C.inspectd_capture_close(f.p)
		f.p = nil
	}
	return nil
}

func (f *ffmpegCapture) PosMsec() float64 {
	return float64(C.inspectd_capture_get(f.p, C.int(gocv.VideoCapturePosMsec)))
}
