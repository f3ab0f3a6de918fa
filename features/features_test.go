package features_test

import (
	"context"
	"fmt"
	"image"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/engine"
	"github.com/inspectd/inspectd/engine/tiny"
	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/internal/testenv"
)

// rampRuntime is a runtime whose maps are known in closed form, so pooling
// can be checked against a hand computation: tap t has channels[t]
// channels at stride strides[t], and value ((t+1)*100 + c)*1e4 + y*W + x at
// (c, y, x) of every image.
type rampRuntime struct {
	names    []string
	channels []int
	strides  []int
	mu       sync.Mutex
	calls    [][]int // input shapes, after the probe
}

func (r *rampRuntime) Run(_ context.Context, in engine.Tensor) ([]engine.Tensor, error) {
	n, h, w := in.Shape[0], in.Shape[2], in.Shape[3]
	if h != 64 || w != 64 || n != 1 { // not New's probe
		r.mu.Lock()
		r.calls = append(r.calls, append([]int(nil), in.Shape...))
		r.mu.Unlock()
	}
	var outs []engine.Tensor
	for t, c := range r.channels {
		H, W := h/r.strides[t], w/r.strides[t]
		out := engine.Tensor{Shape: []int{n, c, H, W}, Data: make([]float32, n*c*H*W)}
		for i := range n {
			for ch := range c {
				for y := range H {
					for x := range W {
						out.Data[((i*c+ch)*H+y)*W+x] = float32((t+1)*100+ch)*1e4 + float32(y*W+x)
					}
				}
			}
		}
		outs = append(outs, out)
	}
	return outs, nil
}
func (r *rampRuntime) Outputs() []string { return r.names }
func (r *rampRuntime) Describe() string  { return "ramp (test)" }
func (r *rampRuntime) Close() error      { return nil }

func images(n, cols, rows int) []gocv.Mat {
	var out []gocv.Mat
	for range n {
		out = append(out, gocv.NewMatWithSize(rows, cols, gocv.MatTypeCV8UC3))
	}
	return out
}

// TestPoolingByHand: each pooled value is the spatial mean of its channel's
// map, (tap*100+c)*1e4 + (H*W-1)/2 for the ramp, placed at the offset of its
// (scale, tap) in the vector; and Dim, Offset and the kept maps agree.
func TestPoolingByHand(t *testing.T) {
	rt := &rampRuntime{names: []string{"a", "b"}, channels: []int{2, 3}, strides: []int{4, 8}}
	cfg := features.Config{Taps: rt.names, Scales: []int{64, 32}, Mean: features.ImageNetMean, Std: features.ImageNetStd}
	ex, err := features.New(rt, cfg, 8)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Dim() != (2+3)*2 {
		t.Fatalf("Dim %d, want (2+3 channels) x 2 scales = 10", ex.Dim())
	}
	for _, tc := range []struct{ scale, tap, want int }{{0, 0, 0}, {0, 1, 2}, {1, 0, 5}, {1, 1, 7}} {
		if got := ex.Offset(tc.scale, tc.tap); got != tc.want {
			t.Errorf("Offset(%d, %d) = %d, want %d", tc.scale, tc.tap, got, tc.want)
		}
	}
	imgs := images(3, 40, 30)
	defer imageops.CloseAll(imgs)
	vecs, maps, err := ex.Extract(context.Background(), imgs, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(vecs) != 3*ex.Dim() || len(maps) != 3 {
		t.Fatalf("%d values and %d map sets for 3 images, want %d and 3", len(vecs), len(maps), 3*ex.Dim())
	}
	for i := range 3 {
		if len(maps[i]) != 4 {
			t.Fatalf("image %d has %d maps, want 2 scales x 2 taps", i, len(maps[i]))
		}
		for _, m := range maps[i] {
			size := cfg.Scales[m.Scale]
			stride := rt.strides[m.Tap]
			if m.C != rt.channels[m.Tap] || m.H != size/stride || m.W != size/stride || len(m.Data) != m.C*m.H*m.W {
				t.Errorf("image %d scale %d tap %d: map %dx%dx%d with %d values, want %dx%dx%d",
					i, m.Scale, m.Tap, m.C, m.H, m.W, len(m.Data), rt.channels[m.Tap], size/stride, size/stride)
			}
			for c := range m.C {
				hw := m.H * m.W
				want := float32((m.Tap+1)*100+c)*1e4 + float32(hw-1)/2
				got := vecs[i*ex.Dim()+ex.Offset(m.Scale, m.Tap)+c]
				if got != want {
					t.Errorf("image %d scale %d tap %d channel %d: pooled %v, want %v", i, m.Scale, m.Tap, c, got, want)
				}
			}
		}
	}
}

// TestBatches: images go to the runtime in runs of at most maxBatch that
// share one input size; aspect-true inputs follow each image's shape.
func TestBatches(t *testing.T) {
	rt := &rampRuntime{names: []string{"a"}, channels: []int{1}, strides: []int{16}}
	cfg := features.Config{Taps: rt.names, Scales: []int{64}, Mean: features.ImageNetMean, Std: features.ImageNetStd, Aspect: true, Stride: 16}
	ex, err := features.New(rt, cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Three wide images, then one tall one, then two wide ones again.
	var imgs []gocv.Mat
	for _, s := range []image.Point{{128, 64}, {128, 64}, {128, 64}, {64, 128}, {128, 64}, {128, 64}} {
		imgs = append(imgs, gocv.NewMatWithSize(s.Y, s.X, gocv.MatTypeCV8UC3))
	}
	defer imageops.CloseAll(imgs)
	maps, err := ex.Maps(context.Background(), imgs, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"[2 3 64 128]", "[1 3 64 128]", "[1 3 128 64]", "[2 3 64 128]"}
	var got []string
	for _, c := range rt.calls {
		got = append(got, fmt.Sprint(c))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("runtime calls %v, want %v", got, want)
	}
	for i, m := range maps {
		w, h := 128/16, 64/16
		if i == 3 {
			w, h = h, w
		}
		if len(m) != 1 || m[0].W != w || m[0].H != h {
			t.Errorf("image %d: maps %+v, want one %dx%d map", i, m, w, h)
		}
	}
	if _, err := ex.Maps(context.Background(), imgs, 1); err == nil {
		t.Error("Maps at a scale index past the configured scales gave no error")
	}
}

func TestInputSize(t *testing.T) {
	for _, tc := range []struct {
		cfg              features.Config
		cols, rows, size int
		w, h             int
	}{
		{features.Config{}, 300, 100, 224, 224, 224},                         // squashed, as in the paper
		{features.Config{Aspect: true}, 300, 100, 224, 672, 224},             // short side 224, long side follows
		{features.Config{Aspect: true}, 100, 300, 224, 224, 672},             // tall
		{features.Config{Aspect: true, Stride: 16}, 250, 100, 256, 640, 256}, // rounded to the stride
		{features.Config{Aspect: true}, 100, 101, 224, 224, 224},             // 226.2 rounds to 224
		{features.Config{Aspect: true}, 10000, 10, 256, 4096, 256},           // long side bounded
		{features.Config{Aspect: true}, 0, 10, 256, 256, 256},                // degenerate: square
		{features.Config{Aspect: true, Stride: 32}, 1000, 1000, 40, 32, 32},  // at least one stride
	} {
		w, h := tc.cfg.InputSize(tc.cols, tc.rows, tc.size)
		if w != tc.w || h != tc.h {
			t.Errorf("%+v InputSize(%d, %d, %d) = %dx%d, want %dx%d", tc.cfg, tc.cols, tc.rows, tc.size, w, h, tc.w, tc.h)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	ok := features.Config{Taps: []string{"a", "b"}, Scales: []int{64}, Mean: features.ImageNetMean, Std: features.ImageNetStd}
	for _, tc := range []struct {
		name    string
		outs    []string
		edit    func(*features.Config)
		wantErr string
	}{
		{"taps in another order", []string{"b", "a"}, nil, "configuration wants taps [a b]"},
		{"a tap missing", []string{"a"}, nil, "configuration wants taps [a b]"},
		{"no taps", []string{"a", "b"}, func(c *features.Config) { c.Taps = nil }, "no backbone taps"},
		{"no scales", []string{"a", "b"}, func(c *features.Config) { c.Scales = nil }, "no scales"},
		{"scale too small", []string{"a", "b"}, func(c *features.Config) { c.Scales = []int{31} }, "scale 31 outside"},
		{"zero std", []string{"a", "b"}, func(c *features.Config) { c.Std[1] = 0 }, "std[1] = 0"},
		{"stride too large", []string{"a", "b"}, func(c *features.Config) { c.Stride = 65 }, "stride 65 outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			cfg.Std = ok.Std
			if tc.edit != nil {
				tc.edit(&cfg)
			}
			rt := &rampRuntime{names: tc.outs, channels: make([]int, len(tc.outs)), strides: make([]int, len(tc.outs))}
			if _, err := features.New(rt, cfg, 1); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New: err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestTinyNetworkShapes runs the real tiny network on ONNX Runtime: its
// stride-2 and stride-4 taps give maps of those sizes, and pooled values
// equal the means of the kept maps.
func TestTinyNetworkShapes(t *testing.T) {
	lib := testenv.RequireORT(t)
	path := filepath.Join(t.TempDir(), "tiny.onnx")
	if err := tiny.WriteFile(path, 1); err != nil {
		t.Fatal(err)
	}
	cfg := features.Config{Taps: []string{tiny.Tap1, tiny.Tap2}, Scales: []int{64, 96}, Mean: features.ImageNetMean, Std: features.ImageNetStd}
	rt, err := engine.Open(engine.Options{Kind: engine.ONNXRuntime, Model: path, Outputs: cfg.Taps, Library: lib})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	ex, err := features.New(rt, cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Channels(0) != 4 || ex.Channels(1) != 8 || ex.Dim() != (4+8)*2 {
		t.Fatalf("channels %d, %d and Dim %d; want 4, 8 and 24", ex.Channels(0), ex.Channels(1), ex.Dim())
	}
	imgs := images(3, 50, 70)
	for i, m := range imgs {
		m.SetTo(gocv.NewScalar(float64(40*i), 90, 200, 0))
	}
	defer imageops.CloseAll(imgs)
	vecs, maps, err := ex.Extract(context.Background(), imgs, true)
	if err != nil {
		t.Fatal(err)
	}
	for i := range imgs {
		for _, m := range maps[i] {
			stride := []int{2, 4}[m.Tap]
			size := cfg.Scales[m.Scale]
			if m.H != size/stride || m.W != size/stride {
				t.Errorf("image %d tap %d at %d px: map %dx%d, want %dx%d", i, m.Tap, size, m.H, m.W, size/stride, size/stride)
			}
			hw := m.H * m.W
			for c := range m.C {
				var s float64
				for _, v := range m.Data[c*hw : (c+1)*hw] {
					s += float64(v)
				}
				want := float32(s / float64(hw))
				if got := vecs[i*ex.Dim()+ex.Offset(m.Scale, m.Tap)+c]; got != want {
					t.Errorf("image %d scale %d tap %d channel %d: pooled %v, mean of its map %v", i, m.Scale, m.Tap, c, got, want)
				}
			}
		}
	}
}
