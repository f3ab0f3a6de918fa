package engine_test

import (
	"bufio"
	"context"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/engine"
	"github.com/inspectd/inspectd/engine/tiny"
	"github.com/inspectd/inspectd/internal/testenv"
)

var kinds = []engine.Kind{engine.ONNXRuntime, engine.OpenCV}

// open skips when a runtime's library is not installed; OpenCV links at build
// time so it is always there.
func open(t testing.TB, kind engine.Kind, model string, outputs ...string) engine.Runtime {
	t.Helper()
	opts := engine.Options{Kind: kind, Model: model, Outputs: outputs, Threads: 2}
	if kind == engine.ONNXRuntime {
		opts.Library = testenv.RequireORT(t)
	}
	rt, err := engine.Open(opts)
	if err != nil {
		t.Fatalf("open %s: %v", kind, err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

func tinyFile(t testing.TB, seed int64) (string, tiny.Weights) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.onnx")
	if err := tiny.WriteFile(path, seed); err != nil {
		t.Fatal(err)
	}
	return path, tiny.NewWeights(seed)
}

func randomInput(n, h, w int, seed int64) engine.Tensor {
	rng := rand.New(rand.NewSource(seed))
	d := make([]float32, n*3*h*w)
	for i := range d {
		d[i] = float32(rng.NormFloat64())
	}
	return engine.Tensor{Shape: []int{n, 3, h, w}, Data: d}
}

func maxRelErr(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		num = math.Max(num, math.Abs(float64(a[i]-b[i])))
		den = math.Max(den, math.Abs(float64(b[i])))
	}
	return num / math.Max(den, 1e-12)
}

// Both runtimes must compute what a plain Go convolution computes, for odd
// sizes and batches, so the tensor plumbing (layout, shapes, batching) is right.
func TestTinyModelMatchesReference(t *testing.T) {
	model, w := tinyFile(t, 7)
	cases := []struct{ n, h, w int }{{1, 32, 32}, {3, 17, 40}, {2, 64, 48}}
	for _, kind := range kinds {
		rt := open(t, kind, model, tiny.Tap1, tiny.Tap2)
		for _, c := range cases {
			in := randomInput(c.n, c.h, c.w, int64(c.h))
			outs, err := rt.Run(context.Background(), in)
			if err != nil {
				t.Fatalf("%s %v: %v", kind, in.Shape, err)
			}
			r1, r2, h1, w1, h2, w2 := tiny.Reference(w, in.Data, c.n, c.h, c.w)
			want := [][]int{{c.n, 4, h1, w1}, {c.n, 8, h2, w2}}
			for i, ref := range [][]float32{r1, r2} {
				if got := outs[i].Shape; !equalInts(got, want[i]) {
					t.Fatalf("%s %v output %d shape %v, want %v", kind, in.Shape, i, got, want[i])
				}
				if e := maxRelErr(outs[i].Data, ref); e > 1e-5 {
					t.Errorf("%s %v output %d: relative error %g", kind, in.Shape, i, e)
				}
			}
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	model, _ := tinyFile(t, 1)
	corrupt := filepath.Join(dir, "corrupt.onnx")
	os.WriteFile(corrupt, []byte("this is not a protobuf \xff\xff\xff\xff"), 0o644)
	truncated := filepath.Join(dir, "truncated.onnx")
	full, _ := os.ReadFile(model)
	os.WriteFile(truncated, full[:len(full)/2], 0o644)
	empty := filepath.Join(dir, "empty.onnx")
	os.WriteFile(empty, nil, 0o644)

	cases := []struct {
		name    string
		opts    engine.Options
		wantErr string
	}{
		{"missing file", engine.Options{Model: filepath.Join(dir, "nope.onnx"), Outputs: []string{"x"}}, "does not exist"},
		{"corrupt file", engine.Options{Model: corrupt, Outputs: []string{"x"}}, "not an ONNX model"},
		{"truncated file", engine.Options{Model: truncated, Outputs: []string{"x"}}, "not an ONNX model"},
		{"empty file", engine.Options{Model: empty, Outputs: []string{"x"}}, "empty file"},
		{"directory", engine.Options{Model: dir, Outputs: []string{"x"}}, "directory"},
		{"unknown output", engine.Options{Model: model, Outputs: []string{"stage9"}}, `no output "stage9"; it has: tap_s2, tap_s4`},
		{"no outputs", engine.Options{Model: model}, "it has: tap_s2, tap_s4"},
		{"unknown kind", engine.Options{Kind: "tflite", Model: model, Outputs: []string{tiny.Tap1}}, `unknown runtime "tflite"`},
		{"missing library", engine.Options{Kind: engine.ONNXRuntime, Model: model, Outputs: []string{tiny.Tap1}, Library: filepath.Join(dir, "libonnxruntime.so.1")}, "runtime library unavailable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "missing library" && testenv.ORTLibrary() != "" {
				// The environment is process-wide; once another test loaded the real
				// library, a wrong path is refused for a different reason.
				c.wantErr = "cannot switch"
				if _, err := engine.Open(engine.Options{Kind: engine.ONNXRuntime, Model: model, Outputs: []string{tiny.Tap1}, Library: testenv.ORTLibrary()}); err != nil {
					t.Fatal(err)
				}
			}
			rt, err := engine.Open(c.opts)
			if err == nil {
				rt.Close()
				t.Fatalf("no error; want one containing %q", c.wantErr)
			}
			if !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %q; want it to contain %q", err, c.wantErr)
			}
		})
	}
}

func TestRunInputErrors(t *testing.T) {
	model, _ := tinyFile(t, 2)
	cases := []struct {
		name    string
		in      engine.Tensor
		wantErr string
	}{
		{"rank 3", engine.Tensor{Shape: []int{3, 8, 8}, Data: make([]float32, 192)}, "rank 3"},
		{"one channel", engine.Tensor{Shape: []int{1, 1, 8, 8}, Data: make([]float32, 64)}, "channels is 1; the model requires 3"},
		{"short data", engine.Tensor{Shape: []int{1, 3, 8, 8}, Data: make([]float32, 10)}, "holds 192 values but data has 10"},
		{"zero size", engine.Tensor{Shape: []int{1, 3, 0, 8}, Data: nil}, "non-positive"},
	}
	for _, kind := range kinds {
		rt := open(t, kind, model, tiny.Tap1)
		for _, c := range cases {
			_, err := rt.Run(context.Background(), c.in)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s %s: error %v; want %q", kind, c.name, err, c.wantErr)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := rt.Run(ctx, randomInput(1, 8, 8, 1)); err == nil {
			t.Errorf("%s: cancelled context not reported", kind)
		}
	}
}

// loadNormalised reads an image as the backbone expects it: RGB in [0,1],
// minus the ImageNet mean, over its std, NCHW at size x size.
func loadNormalised(t testing.TB, path string, size int) engine.Tensor {
	t.Helper()
	img := gocv.IMRead(path, gocv.IMReadColor)
	if img.Empty() {
		t.Fatalf("cannot read %s", path)
	}
	defer img.Close()
	rs := gocv.NewMat()
	defer rs.Close()
	gocv.Resize(img, &rs, image2(size), 0, 0, gocv.InterpolationLinear)
	b := rs.ToBytes()
	mean := [3]float32{0.485, 0.456, 0.406}
	std := [3]float32{0.229, 0.224, 0.225}
	d := make([]float32, 3*size*size)
	for p := 0; p < size*size; p++ {
		for c := 0; c < 3; c++ {
			v := float32(b[3*p+2-c]) / 255 // BGR -> RGB
			d[c*size*size+p] = (v - mean[c]) / std[c]
		}
	}
	return engine.Tensor{Shape: []int{1, 3, size, size}, Data: d}
}

func TestClassifierLabelsCat(t *testing.T) {
	models := testenv.RequireShared(t, "models")
	labels := readLines(t, filepath.Join(models, "imagenet_labels.txt"))
	in := loadNormalised(t, filepath.Join(models, "cat.bmp"), 224)
	for _, kind := range kinds {
		rt := open(t, kind, filepath.Join(models, "mobilenet_v2_classifier.onnx"), "logits")
		outs, err := rt.Run(context.Background(), in)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		best := 0
		for i, v := range outs[0].Data {
			if v > outs[0].Data[best] {
				best = i
			}
		}
		if got := labels[best+1]; got != "Egyptian cat" {
			t.Errorf("%s labels cat.bmp %q; want Egyptian cat", kind, got)
		}
	}
}

func readLines(t testing.TB, path string) []string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, strings.TrimSpace(sc.Text()))
	}
	return lines
}

var taps = []string{"stage3_s8", "stage5_s16", "stage7_s32", "conv_1280_s32"}

func TestBackboneRuntimesAgree(t *testing.T) {
	model := testenv.RequireBackbone(t)
	grace := testenv.RequireShared(t, "models/grace_hopper.bmp")
	ort := open(t, engine.ONNXRuntime, model, taps...)
	cv := open(t, engine.OpenCV, model, taps...)
	channels := []int{32, 96, 320, 1280}
	strides := []int{8, 16, 32, 32}
	for _, size := range []int{448, 224, 112} {
		in := loadNormalised(t, grace, size)
		a, err := ort.Run(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		b, err := cv.Run(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		for i := range taps {
			// Strided convolutions with padding round up: 112/32 gives 4.
			s := (size + strides[i] - 1) / strides[i]
			want := []int{1, channels[i], s, s}
			if !equalInts(a[i].Shape, want) || !equalInts(b[i].Shape, want) {
				t.Fatalf("%s at %d: shapes %v and %v, want %v", taps[i], size, a[i].Shape, b[i].Shape, want)
			}
			if e := maxRelErr(b[i].Data, a[i].Data); e > 1e-3 {
				t.Errorf("%s at %d: runtimes differ, relative error %g", taps[i], size, e)
			}
		}
	}
}

// A batch must give what the images give one at a time.
func TestBatchEqualsSingles(t *testing.T) {
	model := testenv.RequireBackbone(t)
	rt := open(t, engine.ONNXRuntime, model, "stage7_s32")
	in := randomInput(3, 64, 64, 5)
	all, err := rt.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	per := len(all[0].Data) / 3
	for i := 0; i < 3; i++ {
		one := engine.Tensor{Shape: []int{1, 3, 64, 64}, Data: in.Data[i*3*64*64 : (i+1)*3*64*64]}
		out, err := rt.Run(context.Background(), one)
		if err != nil {
			t.Fatal(err)
		}
		if e := maxRelErr(all[0].Data[i*per:(i+1)*per], out[0].Data); e > 1e-4 {
			t.Errorf("image %d: batch and single differ by %g", i, e)
		}
	}
}

// The CPU build of ONNX Runtime lacks CUDA and TensorRT: asking for them must
// fall back to CPU (logged) and say so, not fail, so a line keeps running.
func TestProviderFallsBackToCPU(t *testing.T) {
	lib := testenv.RequireORT(t)
	model, _ := tinyFile(t, 4)
	for _, p := range []engine.Provider{engine.CUDA, engine.TensorRT, engine.CPU} {
		rt, err := engine.Open(engine.Options{Kind: engine.ONNXRuntime, Model: model, Outputs: []string{tiny.Tap1}, Library: lib, Provider: p})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if d := rt.Describe(); !strings.HasSuffix(d, "(cpu)") {
			t.Errorf("%s: runtime says %q; want the CPU fallback", p, d)
		}
		if _, err := rt.Run(context.Background(), randomInput(1, 16, 16, 1)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		rt.Close()
	}
}
