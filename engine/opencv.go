package engine

// #cgo pkg-config: opencv4
// #cgo CXXFLAGS: --std=c++11
// #include <stdlib.h>
// #include "opencv_threads.h"
import "C"

import (
	"context"
	"fmt"
	"sync"
	"unsafe"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/engine/onnxproto"
)

type cvRuntime struct {
	mu      sync.Mutex // cv::dnn::Net is not safe for concurrent forward passes
	net     gocv.Net
	sig     onnxproto.Signature
	outputs []string
}

func openOpenCV(opts Options, sig onnxproto.Signature) (*cvRuntime, error) {
	if opts.Threads > 0 {
		// gocv v0.32 does not wrap cv::setNumThreads; it is process-wide.
		C.inspectd_cv_set_num_threads(C.int(opts.Threads))
	}
	net, err := readNet(opts.Model)
	if err != nil {
		return nil, err
	}
	if err := net.SetPreferableBackend(gocv.NetBackendOpenCV); err != nil {
		net.Close()
		return nil, fmt.Errorf("selecting OpenCV DNN backend: %w", err)
	}
	if err := net.SetPreferableTarget(gocv.NetTargetCPU); err != nil {
		net.Close()
		return nil, fmt.Errorf("selecting OpenCV DNN target: %w", err)
	}
	return &cvRuntime{net: net, sig: sig, outputs: append([]string(nil), opts.Outputs...)}, nil
}

// readNet first imports the file behind a C++ try/catch, because gocv's own
// import lets an exception from a malformed graph abort the whole process.
func readNet(path string) (net gocv.Net, err error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	if msg := C.inspectd_cv_probe_onnx(cpath); msg != nil {
		defer C.free(unsafe.Pointer(msg))
		return net, fmt.Errorf("loading backbone model %s into OpenCV DNN: %s", path, C.GoString(msg))
	}
	net = gocv.ReadNetFromONNX(path)
	if net.Empty() {
		net.Close()
		return net, fmt.Errorf("loading backbone model %s into OpenCV DNN: the importer rejected it", path)
	}
	return net, nil
}

func (r *cvRuntime) Outputs() []string { return r.outputs }

func (r *cvRuntime) Describe() string { return "opencv-dnn " + gocv.OpenCVVersion() + " (cpu)" }

func (r *cvRuntime) Run(ctx context.Context, input Tensor) ([]Tensor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkInput(r.sig, input); err != nil {
		return nil, err
	}
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&input.Data[0])), 4*len(input.Data))
	blob, err := gocv.NewMatWithSizesFromBytes(input.Shape, gocv.MatTypeCV32F, raw)
	if err != nil {
		return nil, fmt.Errorf("wrapping input %v: %w", input.Shape, err)
	}
	defer blob.Close()

	r.mu.Lock()
	defer r.mu.Unlock()
	r.net.SetInput(blob, r.sig.Inputs[0].Name)
	mats := r.net.ForwardLayers(r.outputs)
	defer func() {
		for _, m := range mats {
			m.Close()
		}
	}()
	if len(mats) != len(r.outputs) {
		return nil, fmt.Errorf("OpenCV DNN returned %d outputs; want %d", len(mats), len(r.outputs))
	}
	res := make([]Tensor, len(mats))
	for i, m := range mats {
		if m.Empty() {
			return nil, fmt.Errorf("OpenCV DNN returned no data for output %q on input %v", r.outputs[i], input.Shape)
		}
		data, err := m.DataPtrFloat32()
		if err != nil {
			return nil, fmt.Errorf("reading output %q: %w", r.outputs[i], err)
		}
		res[i] = Tensor{Shape: m.Size(), Data: append([]float32(nil), data...)}
		if res[i].Len() != len(res[i].Data) {
			return nil, fmt.Errorf("output %q: shape %v does not match %d values", r.outputs[i], res[i].Shape, len(res[i].Data))
		}
	}
	return res, nil
}

func (r *cvRuntime) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.net.Close()
}
