package pooled_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/pooled"
)

// standardNormal is n rows of dim independent standard normal values.
func standardNormal(n, dim int) []float32 {
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, n*dim)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// A pooled density by name, as calibration and pipeline use it: fit on the
// good parts' (standardised) vectors, score, and keep what a model file
// keeps; pooled.Load rebuilds it from the file by the method it names.
func ExampleNew() {
	const n, dim = 200, 4
	d, err := pooled.New(string(model.Gaussian))
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := d.Fit(context.Background(), standardNormal(n, dim), n, dim, pooled.Settings{}); err != nil {
		fmt.Println(err)
		return
	}
	test := []float32{
		0, 0, 0, 0, // the centre
		4, 4, 4, 4, // four standard deviations out in every feature
	}
	s := d.Score(test, 2)
	fmt.Printf("centre %.1f, outlier %.1f\n", s[0], s[1])

	m := model.FromTensors(model.Manifest{ID: "example", Method: model.Gaussian, MethodConfig: d.Config()}, d.Tensors())
	back, err := pooled.Load(m, dim)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("same scores after loading:", slices.Equal(back.Score(test, 2), s))
	_, err = pooled.New("no-such-density")
	fmt.Println("unknown name refused:", err != nil)
	// Output:
	// centre 0.0, outlier 15.7
	// same scores after loading: true
	// unknown name refused: true
}

// box is a small pooled density: how far a vector lies outside the range
// each feature took on the good parts (0 inside the box). A real one is one
// file in package pooled with this shape and a Register call in its init.
type box struct {
	lohi []float32 // the lows, then the highs
}

func (*box) Validate(pooled.Settings) error { return nil }

func (b *box) Fit(_ context.Context, x []float32, n, dim int, _ pooled.Settings) (pooled.Stats, error) {
	b.lohi = append(slices.Clone(x[:dim]), x[:dim]...)
	for i := 1; i < n; i++ {
		for j, v := range x[i*dim : (i+1)*dim] {
			b.lohi[j], b.lohi[dim+j] = min(b.lohi[j], v), max(b.lohi[dim+j], v)
		}
	}
	return pooled.Stats{}, nil
}

func (b *box) Score(x []float32, n int) []float32 {
	s, _ := b.ScoreGrad(x, n)
	return s
}

// ScoreGrad is the squared excess over the box and its gradient, which
// the heatmap spreads over the backbone maps.
func (b *box) ScoreGrad(x []float32, n int) ([]float32, []float32) {
	dim := len(b.lohi) / 2
	s, dx := make([]float32, n), make([]float32, len(x))
	for k, v := range x {
		lo, hi := b.lohi[k%dim], b.lohi[dim+k%dim]
		e := max(v-hi, 0) - max(lo-v, 0)
		s[k/dim] += e * e
		dx[k] = 2 * e
	}
	return s, dx
}

func (b *box) Config() json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"dim":%d}`, len(b.lohi)/2))
}

func (b *box) Tensors() []model.Tensor {
	return []model.Tensor{{Name: "box.lohi", Shape: []int{2, len(b.lohi) / 2}, Data: b.lohi}}
}

func (b *box) Load(m *model.Model, dim int) error {
	t, err := m.Tensor("box.lohi")
	if err == nil && !slices.Equal(t.Shape, []int{2, dim}) {
		err = fmt.Errorf("box: shape %v for %d features", t.Shape, dim)
	}
	b.lohi = t.Data
	return err
}

// Adding a pooled density: implement pooled.Density and register a factory
// under the method name model files will carry (with bounds on its stored
// configuration, since a model file is untrusted); calibration, pipeline,
// eval and the CLI's --method then find it by that name.
func ExampleRegister() {
	pooled.Register("example-box", func() pooled.Density { return &box{} })
	model.RegisterBounds("example-box", func(raw json.RawMessage, _ int) error {
		var c struct{ Dim int }
		if err := json.Unmarshal(raw, &c); err != nil {
			return err
		}
		if c.Dim < 1 || c.Dim > model.MaxFeatureDim {
			return fmt.Errorf("dim %d outside 1..%d", c.Dim, model.MaxFeatureDim)
		}
		return nil
	})
	fmt.Println(pooled.Is("example-box"), pooled.Names())

	d, err := pooled.New("example-box")
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _ = d.Fit(context.Background(), []float32{0, 0, 2, 0, 0, 2, 2, 2}, 4, 2, pooled.Settings{})
	s, dx := d.ScoreGrad([]float32{1, 1, 4, -1}, 2)
	fmt.Printf("scores %.1f %.1f, gradient of the second %.1f %.1f\n", s[0], s[1], dx[2], dx[3])

	m := model.FromTensors(model.Manifest{ID: "example", Method: "example-box", MethodConfig: d.Config()}, d.Tensors())
	back, err := pooled.Load(m, 2)
	fmt.Println("loaded by name:", err == nil && slices.Equal(back.Score([]float32{4, -1}, 1), s[1:]))
	// Output:
	// true [example-box flow gaussian]
	// scores 0.0 5.0, gradient of the second 4.0 -2.0
	// loaded by name: true
}
