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

// meanDistance is the smallest pooled density: squared distance to the mean
// good vector, per feature. A real one is one file in package pooled with
// this shape and a Register call in its init.
type meanDistance struct {
	mean []float32
}

func (*meanDistance) Validate(pooled.Settings) error { return nil }

func (m *meanDistance) Fit(_ context.Context, x []float32, n, dim int, _ pooled.Settings) (pooled.Stats, error) {
	m.mean = make([]float32, dim)
	for i := range n {
		for j := range dim {
			m.mean[j] += x[i*dim+j] / float32(n)
		}
	}
	return pooled.Stats{}, nil
}

func (m *meanDistance) Score(x []float32, n int) []float32 {
	s, _ := m.ScoreGrad(x, n)
	return s
}

func (m *meanDistance) ScoreGrad(x []float32, n int) ([]float32, []float32) {
	dim := len(m.mean)
	s, dx := make([]float32, n), make([]float32, n*dim)
	for i := range n {
		for j := range dim {
			d := x[i*dim+j] - m.mean[j]
			s[i] += d * d / float32(dim)
			dx[i*dim+j] = 2 * d / float32(dim)
		}
	}
	return s, dx
}

func (m *meanDistance) Config() json.RawMessage {
	b, _ := json.Marshal(map[string]int{"dim": len(m.mean)})
	return b
}

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

// Adding a pooled density: implement pooled.Density and register a factory
// under the method name model files will carry (with bounds on its stored
// configuration, since a model file is untrusted); calibration, pipeline,
// eval and the CLI's --method then find it by that name.
func ExampleRegister() {
	pooled.Register("example-mean", func() pooled.Density { return &meanDistance{} })
	model.RegisterBounds("example-mean", func(raw json.RawMessage, _ int) error {
		var c struct{ Dim int }
		if err := json.Unmarshal(raw, &c); err != nil {
			return err
		}
		if c.Dim < 1 || c.Dim > model.MaxFeatureDim {
			return fmt.Errorf("dim %d outside 1..%d", c.Dim, model.MaxFeatureDim)
		}
		return nil
	})
	fmt.Println(pooled.Is("example-mean"), pooled.Names())

	d, err := pooled.New("example-mean")
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _ = d.Fit(context.Background(), []float32{0, 0, 2, 0, 0, 2, 2, 2}, 4, 2, pooled.Settings{})
	s, dx := d.ScoreGrad([]float32{1, 1, 4, 1}, 2)
	fmt.Printf("scores %.1f %.1f, gradient of the second %.1f %.1f\n", s[0], s[1], dx[2], dx[3])
	// Output:
	// true [example-mean flow gaussian]
	// scores 0.0 4.5, gradient of the second 3.0 0.0
}
