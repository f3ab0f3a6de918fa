package spec

// RuntimeKind names a network runtime implementation (engine.Kind): the
// value of INSPECTD_RUNTIME, not a running network (that is engine.Runtime).
type RuntimeKind string

const (
	ONNXRuntime RuntimeKind = "onnxruntime"
	OpenCV      RuntimeKind = "opencv"
)

// Provider names an execution provider of ONNX Runtime (engine.Provider).
type Provider string

const (
	CPU      Provider = "cpu"
	CUDA     Provider = "cuda"
	TensorRT Provider = "tensorrt"
)
