// Package engine runs the pretrained CNN backbone and returns unpooled feature
// maps by output name. The design card names this folder "tflite"; TensorFlow
// Lite's C library cannot be obtained here, so the runtimes are ONNX Runtime
// (default) and OpenCV DNN, both reading the same ONNX file.
package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/inspectd/inspectd/engine/onnxproto"
	"github.com/inspectd/inspectd/spec"
)

// Tensor is a dense float32 array in row-major order (NCHW for images).
type Tensor struct {
	Shape []int
	Data  []float32
}

// Len is the number of elements the shape holds.
func (t Tensor) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Runtime runs one backbone model. Implementations are safe for concurrent
// use (OpenCV DNN serialises calls internally).
type Runtime interface {
	// Run feeds one NCHW batch (already normalised) and returns the requested
	// outputs, each NCHW, in the order of Outputs().
	Run(ctx context.Context, input Tensor) ([]Tensor, error)
	// Outputs are the output names this runtime returns.
	Outputs() []string
	// Describe says which runtime and execution provider is in use.
	Describe() string
	Close() error
}

// Kind names a runtime implementation. The names live in package spec, free
// of native code, so configuration can check them without linking a runtime.
type Kind = spec.RuntimeKind

const (
	ONNXRuntime = spec.ONNXRuntime
	OpenCV      = spec.OpenCV
)

// Provider names an execution provider of ONNX Runtime.
type Provider = spec.Provider

const (
	CPU      = spec.CPU
	CUDA     = spec.CUDA
	TensorRT = spec.TensorRT
)

// Options selects and configures a runtime.
type Options struct {
	Kind     Kind
	Model    string   // ONNX file
	Outputs  []string // output names to return
	Threads  int      // intra-op threads; 0 lets the runtime choose
	Library  string   // ONNX Runtime shared library (onnxruntime only)
	Provider Provider // onnxruntime only; falls back to CPU with a warning
}

// ErrLibrary marks a runtime whose shared library could not be loaded.
var ErrLibrary = errors.New("runtime library unavailable")

// Open validates the model against the options and creates a session that is
// reused for every call.
func Open(opts Options) (Runtime, error) {
	sig, err := checkModel(opts)
	if err != nil {
		return nil, err
	}
	switch opts.Kind {
	case ONNXRuntime, "":
		return openORT(opts, sig)
	case OpenCV:
		return openOpenCV(opts, sig)
	default:
		return nil, fmt.Errorf("unknown runtime %q (want %q or %q)", opts.Kind, ONNXRuntime, OpenCV)
	}
}

// checkModel reads the model's signature so both runtimes refuse the same bad
// input with the same message, before any native code sees it.
func checkModel(opts Options) (onnxproto.Signature, error) {
	if opts.Model == "" {
		return onnxproto.Signature{}, errors.New("no backbone model file given")
	}
	sig, err := onnxproto.ReadSignatureFile(opts.Model)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return sig, fmt.Errorf("backbone model %s does not exist (set INSPECTD_BACKBONE or run scripts/setup.sh)", opts.Model)
		}
		return sig, fmt.Errorf("reading backbone model %s: %w (file corrupt or not ONNX?)", opts.Model, err)
	}
	if len(sig.Inputs) != 1 {
		return sig, fmt.Errorf("backbone model %s has %d inputs; want exactly one image input", opts.Model, len(sig.Inputs))
	}
	in := sig.Inputs[0]
	if in.ElemType != onnxproto.ElemFloat32 {
		return sig, fmt.Errorf("backbone model %s: input %q has element type %d; want float32", opts.Model, in.Name, in.ElemType)
	}
	if in.Dims != nil && len(in.Dims) != 4 {
		return sig, fmt.Errorf("backbone model %s: input %q has rank %d; want 4 (NCHW)", opts.Model, in.Name, len(in.Dims))
	}
	if len(opts.Outputs) == 0 {
		return sig, fmt.Errorf("no outputs requested from %s; it has: %s", opts.Model, strings.Join(sig.OutputNames(), ", "))
	}
	have := map[string]bool{}
	for _, n := range sig.OutputNames() {
		have[n] = true
	}
	for _, o := range opts.Outputs {
		if !have[o] {
			return sig, fmt.Errorf("backbone model %s has no output %q; it has: %s", opts.Model, o, strings.Join(sig.OutputNames(), ", "))
		}
	}
	return sig, nil
}

// checkInput refuses a batch the model cannot take, naming the mismatch.
func checkInput(sig onnxproto.Signature, t Tensor) error {
	if len(t.Shape) != 4 {
		return fmt.Errorf("input has rank %d (shape %v); want 4 (NCHW)", len(t.Shape), t.Shape)
	}
	for _, d := range t.Shape {
		if d <= 0 {
			return fmt.Errorf("input shape %v has a non-positive dimension", t.Shape)
		}
	}
	if t.Len() != len(t.Data) {
		return fmt.Errorf("input shape %v holds %d values but data has %d", t.Shape, t.Len(), len(t.Data))
	}
	dims := sig.Inputs[0].Dims
	names := [4]string{"batch", "channels", "height", "width"}
	for i, d := range dims {
		if !d.Free() && int64(t.Shape[i]) != d.Value {
			return fmt.Errorf("input %s is %d; the model requires %d (shape %v)", names[i], t.Shape[i], d.Value, t.Shape)
		}
	}
	return nil
}
