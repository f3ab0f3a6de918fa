package local_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/inspectd/inspectd/local"
	"github.com/inspectd/inspectd/model"
)

// A patch density by name: PatchCore with a small bank scores each patch
// by its distance to the nearest good patch; leave-one-out (exclude >= 0)
// scores a good image's patches against the other images' only.
func ExampleNew() {
	d, err := local.New(local.MethodPatchCore, json.RawMessage(`{"max_bank":16,"proj_dim":0,"seed":1}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	// Two good images of two 2-d patches each.
	good := []float32{0, 0, 1, 0, 0, 1, 1, 1}
	owner := []int32{0, 0, 1, 1}
	if err := d.Fit(context.Background(), good, 4, 2, owner); err != nil {
		fmt.Println(err)
		return
	}
	s, _ := d.Score(context.Background(), []float32{1, 0, 4, 4}, 2, -1)
	fmt.Printf("a known patch %.2f, a new one %.2f\n", s[0], s[1])
	loo, _ := d.Score(context.Background(), good[:4], 2, 0)
	fmt.Printf("image 0 without itself: %.2f %.2f\n", loo[0], loo[1])
	// Output:
	// a known patch 0.00, a new one 4.24
	// image 0 without itself: 1.00 1.00
}

// meanDistance is the smallest patch density: distance to the mean good
// patch. A real one is one file in package local with this shape and a
// Register call in its init.
type meanDistance struct {
	mean []float32
}

func (m *meanDistance) Fit(_ context.Context, x []float32, n, dim int, _ []int32) error {
	m.mean = make([]float32, dim)
	for i := range n {
		for j := range dim {
			m.mean[j] += x[i*dim+j] / float32(n)
		}
	}
	return nil
}

func (m *meanDistance) Score(_ context.Context, x []float32, n int, _ int32) ([]float32, error) {
	dim := len(m.mean)
	out := make([]float32, n)
	for i := range out {
		var s float64
		for j := range dim {
			d := float64(x[i*dim+j] - m.mean[j])
			s += d * d
		}
		out[i] = float32(math.Sqrt(s))
	}
	return out, nil
}

func (m *meanDistance) Config() json.RawMessage { return json.RawMessage(`{}`) }

func (m *meanDistance) Tensors() []model.Tensor {
	return []model.Tensor{{Name: "meandistance.mean", Shape: []int{len(m.mean)}, Data: m.mean}}
}

func (m *meanDistance) Load(mod *model.Model, dim int) error {
	t, err := mod.Tensor("meandistance.mean")
	if err != nil {
		return err
	}
	if len(t.Data) != dim {
		return fmt.Errorf("meandistance: %d values, want %d", len(t.Data), dim)
	}
	m.mean = t.Data
	return nil
}

// Adding a density: implement local.Density and register a factory under
// the method name model files will carry; calibration, pipeline and eval
// then find it by that name.
func ExampleRegister() {
	local.Register("example-mean", func(json.RawMessage) (local.Density, error) { return &meanDistance{}, nil })
	fmt.Println(local.Is("example-mean"))

	d, err := local.New("example-mean", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = d.Fit(context.Background(), []float32{0, 0, 2, 0, 0, 2, 2, 2}, 4, 2, []int32{0, 1, 2, 3})
	s, _ := d.Score(context.Background(), []float32{1, 1, 4, 1}, 2, -1)
	fmt.Printf("%.2f %.2f\n", s[0], s[1])
	_, err = local.New("no-such-density", nil)
	fmt.Println(err != nil)
	// Output:
	// true
	// 0.00 3.00
	// true
}

// PaDiM keeps a Gaussian of the good patches per grid position and scores
// a patch by its Mahalanobis distance to its cell's: it needs each row's
// position (local.Positional). Leave-one-out scores come from the same
// statistics less the image's own patches.
func ExamplePaDiM() {
	d, err := local.New(local.MethodPaDiM, json.RawMessage(`{"dims":2,"radius":1,"shrink":0.1,"ridge":0.01,"seed":1}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	p := d.(local.Positional)
	// Four good images of a 1x2 grid of 2-d patches.
	good := []float32{1, 2, 0, 1, 3, 1, 2, 0, 2, 4, 1, 3, 0, 1, 1, 2}
	owner := []int32{0, 0, 1, 1, 2, 2, 3, 3}
	grid := local.GridPositions(1, 2)
	var at []local.Position
	for range 4 {
		at = append(at, grid...)
	}
	if err := p.FitAt(context.Background(), good, 8, 2, owner, at); err != nil {
		fmt.Println(err)
		return
	}
	s, _ := p.ScoreAt(context.Background(), []float32{1.5, 2, 9, 9}, 2, grid, -1)
	fmt.Printf("a usual patch %.2f, a new one %.2f\n", s[0], s[1])
	loo, _ := p.ScoreAt(context.Background(), good[:4], 2, grid, 0)
	in, _ := p.ScoreAt(context.Background(), good[:4], 2, grid, -1)
	fmt.Println("image 0 scores higher without itself:", loo[0] > in[0] && loo[1] > in[1])
	// Output:
	// a usual patch 0.00, a new one 9.43
	// image 0 scores higher without itself: true
}
