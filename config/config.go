// Package config reads inspectd's settings from the environment (prefix
// INSPECTD_) with envconfig: defaults and validation live here, in one place,
// and errors name the variable.
package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"text/tabwriter"

	"github.com/kelseyhightower/envconfig"

	"github.com/inspectd/inspectd/engine/onnxproto"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/spec"
)

// Prefix of every environment variable.
const Prefix = "INSPECTD"

// Runtime selects the backbone file and how it runs.
type Runtime struct {
	Backbone string `envconfig:"BACKBONE" desc:"pretrained backbone ONNX file (default: .deps/models/mobilenet_v2_taps.onnx, then /usr/share/inspectd/mobilenet_v2_taps.onnx)"`
	Engine   string `envconfig:"RUNTIME" default:"onnxruntime" desc:"network runtime: onnxruntime or opencv"`
	ORTLib   string `envconfig:"ORT_LIB" desc:"ONNX Runtime shared library (default: .deps/onnxruntime/<arch>/libonnxruntime.so.1, then /usr/lib/inspectd/libonnxruntime.so.1)"`
	Provider string `envconfig:"PROVIDER" default:"cpu" desc:"ONNX Runtime execution provider: cpu, cuda or tensorrt (falls back to cpu)"`
	Threads  int    `envconfig:"THREADS" default:"0" desc:"backbone threads (0: runtime default)"`
	MaxBatch int    `envconfig:"MAX_BATCH" default:"2" desc:"images per backbone call: larger batches gain nothing on a CPU and cost memory (batch 8: 620 MB peak, 2: 310 MB)"`
	// Image limits, checked from the file size and the image header before
	// decoding (score, calibrate, eval, hot folder) and on camera frames.
	MaxImagePixels int64 `envconfig:"MAX_IMAGE_PIXELS" default:"50000000" desc:"images with more pixels (width x height) are refused before decoding (0: the default)"`
	MaxImageBytes  int64 `envconfig:"MAX_IMAGE_BYTES" default:"67108864" desc:"image files larger than this are refused unread (0: the default)"`
}

// LoadRuntime reads and validates the runtime settings.
func LoadRuntime() (Runtime, error) {
	var r Runtime
	if err := envconfig.Process(Prefix, &r); err != nil {
		return r, fmt.Errorf("configuration: %w", err)
	}
	return r, r.Validate()
}

// Validate checks values and resolves default file locations.
func (r *Runtime) Validate() error {
	switch spec.RuntimeKind(r.Engine) {
	case spec.ONNXRuntime, spec.OpenCV:
	default:
		return fmt.Errorf("configuration: INSPECTD_RUNTIME=%q: want onnxruntime or opencv", r.Engine)
	}
	switch spec.Provider(r.Provider) {
	case spec.CPU, spec.CUDA, spec.TensorRT:
	default:
		return fmt.Errorf("configuration: INSPECTD_PROVIDER=%q: want cpu, cuda or tensorrt", r.Provider)
	}
	if r.Threads < 0 || r.Threads > 256 {
		return fmt.Errorf("configuration: INSPECTD_THREADS=%d: want 0..256", r.Threads)
	}
	if r.MaxBatch < 1 || r.MaxBatch > 256 {
		return fmt.Errorf("configuration: INSPECTD_MAX_BATCH=%d: want 1..256", r.MaxBatch)
	}
	// Zero (a Runtime made in code) takes the defaults. OpenCV's own
	// decoders stop at 2^30 pixels (CV_IO_MAX_IMAGE_PIXELS).
	if r.MaxImagePixels == 0 {
		r.MaxImagePixels = 50_000_000
	}
	if r.MaxImageBytes == 0 {
		r.MaxImageBytes = 64 << 20
	}
	if r.MaxImagePixels < 1 || r.MaxImagePixels > 1<<30 {
		return fmt.Errorf("configuration: INSPECTD_MAX_IMAGE_PIXELS=%d: want 1..%d", r.MaxImagePixels, 1<<30)
	}
	if r.MaxImageBytes < 1 || r.MaxImageBytes > 1<<32 {
		return fmt.Errorf("configuration: INSPECTD_MAX_IMAGE_BYTES=%d: want 1..%d", r.MaxImageBytes, int64(1)<<32)
	}
	if r.Backbone == "" {
		r.Backbone = firstExisting(
			filepath.Join(".deps", "models", "mobilenet_v2_taps.onnx"),
			"/usr/share/inspectd/mobilenet_v2_taps.onnx")
	}
	if r.ORTLib == "" && spec.RuntimeKind(r.Engine) == spec.ONNXRuntime {
		arch := "x64"
		if runtime.GOARCH == "arm64" {
			arch = "arm64"
		}
		r.ORTLib = firstExisting(
			filepath.Join(".deps", "onnxruntime", arch, "libonnxruntime.so.1"),
			"/usr/lib/inspectd/libonnxruntime.so.1")
	}
	return nil
}

// FindBackbone locates a backbone by file name (as a model records it, or as
// a method's default names it): beside INSPECTD_BACKBONE, in .deps/models, in
// /usr/share/inspectd. A name that is a path is taken as it is; a name found
// nowhere gives INSPECTD_BACKBONE, whose checksum then decides.
func (r Runtime) FindBackbone(name string) string {
	return model.FindBackbone(name, r.Backbone, r.BackboneDirs()...)
}

// BackboneDirs are where a backbone named by a model is looked for, in order:
// beside INSPECTD_BACKBONE, in .deps/models, in /usr/share/inspectd.
func (r Runtime) BackboneDirs() []string {
	dirs := []string{filepath.Join(".deps", "models"), "/usr/share/inspectd"}
	if r.Backbone != "" {
		dirs = append([]string{filepath.Dir(r.Backbone)}, dirs...)
	}
	return dirs
}

// BackboneFor picks the backbone for a calibration that wants taps: a
// path (with a directory) as given; else INSPECTD_BACKBONE when it has every
// tap (so a backbone set there, a test network or another export, is used
// as it is); else the named file found by FindBackbone (a method's default,
// e.g. resnet50v2_s16.onnx beside the MobileNetV2 default).
func (r Runtime) BackboneFor(name string, taps []string) string {
	if name != "" && filepath.Base(name) != name {
		return name
	}
	if sig, err := onnxproto.ReadSignatureFile(r.Backbone); err == nil {
		have := map[string]bool{}
		for _, o := range sig.OutputNames() {
			have[o] = true
		}
		all := len(taps) > 0
		for _, t := range taps {
			all = all && have[t]
		}
		if all {
			return r.Backbone
		}
	}
	return r.FindBackbone(name)
}

// firstExisting returns the first path that exists, else the first one (so
// the error message names where it was expected).
func firstExisting(paths ...string) string {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			if abs, err := filepath.Abs(p); err == nil {
				return abs
			}
			return p
		}
	}
	return paths[0]
}

// Usage lists the environment variables of a settings struct with defaults.
func Usage(w io.Writer, spec any) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  VARIABLE\tDEFAULT\tMEANING")
	usageFields(tw, reflect.TypeOf(spec).Elem())
	tw.Flush()
}

func usageFields(w io.Writer, t reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			usageFields(w, f.Type)
			continue
		}
		name := f.Tag.Get("envconfig")
		if name == "" {
			continue
		}
		fmt.Fprintf(w, "  %s_%s\t%s\t%s\n", Prefix, name, f.Tag.Get("default"), f.Tag.Get("desc"))
	}
}
