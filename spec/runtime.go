package spec

// Runtime names a network runtime implementation (engine.Kind).
type Runtime string

const (
	ONNXRuntime Runtime = "onnxruntime"
	OpenCV      Runtime = "opencv"
)

// Provider names an execution provider of ONNX Runtime (engine.Provider).
type Provider string

const (
	CPU      Provider = "cpu"
	CUDA     Provider = "cuda"
	TensorRT Provider = "tensorrt"
)
