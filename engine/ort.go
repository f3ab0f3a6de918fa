package engine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/inspectd/inspectd/engine/onnxproto"
)

// ONNX Runtime keeps one environment per process, bound to one library file.
var (
	ortMu      sync.Mutex
	ortLibrary string
)

func initORT(lib string) error {
	ortMu.Lock()
	defer ortMu.Unlock()
	if ort.IsInitialized() {
		if lib != ortLibrary {
			return fmt.Errorf("ONNX Runtime already initialised from %s; cannot switch to %s in one process", ortLibrary, lib)
		}
		return nil
	}
	if lib == "" {
		return fmt.Errorf("%w: ONNX Runtime library path not set (INSPECTD_ORT_LIB, or run scripts/setup.sh)", ErrLibrary)
	}
	if _, err := os.Stat(lib); err != nil {
		return fmt.Errorf("%w: ONNX Runtime library %s: %v (run scripts/setup.sh or set INSPECTD_ORT_LIB)", ErrLibrary, lib, err)
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("%w: loading ONNX Runtime from %s: %v", ErrLibrary, lib, err)
	}
	ortLibrary = lib
	return nil
}

type ortRuntime struct {
	sess     *ort.DynamicAdvancedSession
	sig      onnxproto.Signature
	outputs  []string
	provider Provider
}

func openORT(opts Options, sig onnxproto.Signature) (*ortRuntime, error) {
	if err := initORT(opts.Library); err != nil {
		return nil, err
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("creating ONNX Runtime session options: %w", err)
	}
	defer so.Destroy()
	if opts.Threads > 0 {
		if err := so.SetIntraOpNumThreads(opts.Threads); err != nil {
			return nil, fmt.Errorf("setting %d threads: %w", opts.Threads, err)
		}
		if err := so.SetInterOpNumThreads(1); err != nil {
			return nil, fmt.Errorf("setting inter-op threads: %w", err)
		}
	}
	provider := appendProvider(so, opts.Provider)
	sess, err := ort.NewDynamicAdvancedSession(opts.Model, []string{sig.Inputs[0].Name}, opts.Outputs, so)
	if err != nil {
		return nil, fmt.Errorf("loading backbone model %s into ONNX Runtime: %w", opts.Model, err)
	}
	return &ortRuntime{sess: sess, sig: sig, outputs: append([]string(nil), opts.Outputs...), provider: provider}, nil
}

// appendProvider asks for an accelerator and falls back to CPU when the
// library was built without it, because a daemon on a line must keep
// inspecting (slower) rather than refuse to start.
func appendProvider(so *ort.SessionOptions, p Provider) Provider {
	switch p {
	case "", CPU:
		return CPU
	case CUDA:
		opts, err := ort.NewCUDAProviderOptions()
		if err == nil {
			defer opts.Destroy()
			err = so.AppendExecutionProviderCUDA(opts)
		}
		if err != nil {
			slog.Warn("CUDA execution provider unavailable; using CPU", "err", err)
			return CPU
		}
		return CUDA
	case TensorRT:
		opts, err := ort.NewTensorRTProviderOptions()
		if err == nil {
			defer opts.Destroy()
			err = so.AppendExecutionProviderTensorRT(opts)
		}
		if err != nil {
			slog.Warn("TensorRT execution provider unavailable; using CPU", "err", err)
			return CPU
		}
		return TensorRT
	default:
		slog.Warn("unknown execution provider; using CPU", "provider", p)
		return CPU
	}
}

func (r *ortRuntime) Outputs() []string { return r.outputs }

func (r *ortRuntime) Describe() string {
	return "onnxruntime " + ort.GetVersion() + " (" + string(r.provider) + ")"
}

func (r *ortRuntime) Run(ctx context.Context, input Tensor) ([]Tensor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkInput(r.sig, input); err != nil {
		return nil, err
	}
	shape := make(ort.Shape, len(input.Shape))
	for i, d := range input.Shape {
		shape[i] = int64(d)
	}
	in, err := ort.NewTensor(shape, input.Data)
	if err != nil {
		return nil, fmt.Errorf("wrapping input %v: %w", input.Shape, err)
	}
	defer in.Destroy()
	outs := make([]ort.Value, len(r.outputs))
	defer func() {
		for _, o := range outs {
			if o != nil {
				o.Destroy()
			}
		}
	}()
	if err := r.sess.Run([]ort.Value{in}, outs); err != nil {
		return nil, fmt.Errorf("running backbone on %v: %w", input.Shape, err)
	}
	res := make([]Tensor, len(outs))
	for i, o := range outs {
		t, ok := o.(*ort.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("output %q is %T; want a float32 tensor", r.outputs[i], o)
		}
		s := t.GetShape()
		dims := make([]int, len(s))
		for j, d := range s {
			dims[j] = int(d)
		}
		res[i] = Tensor{Shape: dims, Data: append([]float32(nil), t.GetData()...)}
	}
	return res, nil
}

func (r *ortRuntime) Close() error {
	if r.sess == nil {
		return nil
	}
	err := r.sess.Destroy()
	r.sess = nil
	if err != nil {
		return fmt.Errorf("closing ONNX Runtime session: %w", err)
	}
	return nil
}
