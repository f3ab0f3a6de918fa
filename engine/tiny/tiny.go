// Package tiny builds a small convolutional ONNX model with two feature taps,
// shaped like the real backbone (input "input", NCHW float32, free batch and
// size), plus a pure-Go reference forward pass. Tests of both runtimes and of
// the pipeline use it where the pretrained backbone is absent, and comparing
// the runtimes against the reference checks the plumbing independently of any
// runtime.
package tiny

import (
	"fmt"
	"math"
	"math/rand"
	"os"

	"github.com/inspectd/inspectd/engine/onnxproto"
)

// Taps of the tiny model: stride 2 with 4 channels, stride 4 with 8 channels.
const (
	Tap1 = "tap_s2"
	Tap2 = "tap_s4"
	c0   = 3
	c1   = 4
	c2   = 8
	k    = 3
)

// Weights of the two 3x3 stride-2 convolutions (pad 1), each followed by ReLU.
type Weights struct {
	W1, B1, W2, B2 []float32
}

// NewWeights draws reproducible weights for a seed.
func NewWeights(seed int64) Weights {
	rng := rand.New(rand.NewSource(seed))
	draw := func(n int, scale float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * scale)
		}
		return v
	}
	return Weights{
		W1: draw(c1*c0*k*k, math.Sqrt(2.0/(c0*k*k))),
		B1: draw(c1, 0.1),
		W2: draw(c2*c1*k*k, math.Sqrt(2.0/(c1*k*k))),
		B2: draw(c2, 0.1),
	}
}

// Model returns the ONNX graph for the weights.
func Model(w Weights) onnxproto.Model {
	free := func(p string) onnxproto.Dim { return onnxproto.Dim{Value: -1, Param: p} }
	fixed := func(v int64) onnxproto.Dim { return onnxproto.Dim{Value: v} }
	conv := func(name, in, weight, bias, out string) onnxproto.Node {
		return onnxproto.Node{
			OpType: "Conv", Name: name,
			Inputs: []string{in, weight, bias}, Outputs: []string{out},
			Attrs: []onnxproto.Attr{
				onnxproto.IntsAttr("kernel_shape", k, k),
				onnxproto.IntsAttr("strides", 2, 2),
				onnxproto.IntsAttr("pads", 1, 1, 1, 1),
			},
		}
	}
	return onnxproto.Model{
		Opset: 13, Producer: "inspectd-tiny", GraphName: "tiny",
		Nodes: []onnxproto.Node{
			conv("conv1", "input", "w1", "b1", "c1"),
			{OpType: "Relu", Name: "relu1", Inputs: []string{"c1"}, Outputs: []string{Tap1}},
			conv("conv2", Tap1, "w2", "b2", "c2"),
			{OpType: "Relu", Name: "relu2", Inputs: []string{"c2"}, Outputs: []string{Tap2}},
		},
		Initializers: []onnxproto.Initializer{
			{Name: "w1", Dims: []int64{c1, c0, k, k}, Data: w.W1},
			{Name: "b1", Dims: []int64{c1}, Data: w.B1},
			{Name: "w2", Dims: []int64{c2, c1, k, k}, Data: w.W2},
			{Name: "b2", Dims: []int64{c2}, Data: w.B2},
		},
		Inputs: []onnxproto.ValueInfo{{Name: "input", ElemType: onnxproto.ElemFloat32,
			Dims: []onnxproto.Dim{free("N"), fixed(c0), free("H"), free("W")}}},
		Outputs: []onnxproto.ValueInfo{
			{Name: Tap1, ElemType: onnxproto.ElemFloat32, Dims: []onnxproto.Dim{free("N"), fixed(c1), free("H2"), free("W2")}},
			{Name: Tap2, ElemType: onnxproto.ElemFloat32, Dims: []onnxproto.Dim{free("N"), fixed(c2), free("H4"), free("W4")}},
		},
	}
}

// WriteFile writes the model for seed to path.
func WriteFile(path string, seed int64) error {
	if err := os.WriteFile(path, Model(NewWeights(seed)).Marshal(), 0o644); err != nil {
		return fmt.Errorf("writing tiny model: %w", err)
	}
	return nil
}

// Reference computes both taps in plain Go for an NCHW input.
func Reference(w Weights, in []float32, n, h, wd int) (tap1, tap2 []float32, h1, w1, h2, w2 int) {
	tap1, h1, w1 = convReLU(in, n, c0, h, wd, w.W1, w.B1, c1)
	tap2, h2, w2 = convReLU(tap1, n, c1, h1, w1, w.W2, w.B2, c2)
	return
}

func convReLU(in []float32, n, cin, h, w int, wt, b []float32, cout int) ([]float32, int, int) {
	oh, ow := (h+2-k)/2+1, (w+2-k)/2+1
	out := make([]float32, n*cout*oh*ow)
	for b0 := 0; b0 < n; b0++ {
		for co := 0; co < cout; co++ {
			for y := 0; y < oh; y++ {
				for x := 0; x < ow; x++ {
					s := float64(b[co])
					for ci := 0; ci < cin; ci++ {
						for ky := 0; ky < k; ky++ {
							iy := y*2 - 1 + ky
							if iy < 0 || iy >= h {
								continue
							}
							for kx := 0; kx < k; kx++ {
								ix := x*2 - 1 + kx
								if ix < 0 || ix >= w {
									continue
								}
								s += float64(in[((b0*cin+ci)*h+iy)*w+ix]) * float64(wt[((co*cin+ci)*k+ky)*k+kx])
							}
						}
					}
					out[((b0*cout+co)*oh+y)*ow+x] = float32(max(s, 0))
				}
			}
		}
	}
	return out, oh, ow
}
