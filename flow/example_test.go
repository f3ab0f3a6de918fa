package flow_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/inspectd/inspectd/flow"
)

// DifferNet's flow: build it, train it by maximum likelihood on good
// vectors, and score new ones (the mean of their squared latent
// coordinates; good vectors end up near 1, unusual ones far above).
func ExampleNew() {
	const n, dim = 256, 4
	rng := rand.New(rand.NewPCG(1, 1))
	good := make([]float32, n*dim)
	for i := 0; i < n; i++ {
		a := rng.NormFloat64()
		for j := 0; j < dim; j++ {
			good[i*dim+j] = float32(a + 0.3*rng.NormFloat64()) // correlated features
		}
	}
	f, err := flow.New(flow.Config{Dim: dim, Blocks: 2, Hidden: 16, Depth: 1, Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Per block two subnets of 2*16+16 + 16*4+4 weights and biases.
	fmt.Println("parameters:", f.NumParams())
	st, err := f.Train(context.Background(), good, n, flow.TrainConfig{MaxEpochs: 40, Batch: 32, Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("epochs:", st.Epochs, st.StopReason)
	fmt.Println("loss fell:", st.FinalLoss < st.FirstLoss)
	s := f.Score([]float32{
		0.5, 0.5, 0.5, 0.5, // like the good vectors: features agree
		1.5, -1.5, 1.5, -1.5, // features that disagree, never seen
	}, 2)
	fmt.Println("unusual scores higher:", s[1] > 10*s[0])
	// Output:
	// parameters: 464
	// epochs: 40 max epochs
	// loss fell: true
	// unusual scores higher: true
}

// The flow is invertible: Forward maps features to the latent space (with
// each row's log-determinant, which the likelihood needs) and Inverse maps
// them back, which is how one would sample good-looking vectors.
func ExampleFlow_Inverse() {
	f, err := flow.New(flow.Config{Dim: 4, Blocks: 2, Hidden: 8, Depth: 1, Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	x := []float32{0.5, -1, 2, 0.25}
	z, logdet := f.Forward(x, 1)
	back := f.Inverse(z, 1)
	var worst float64
	for i := range x {
		worst = max(worst, math.Abs(float64(back[i]-x[i])))
	}
	// Untrained, the flow is a permutation: volume preserved.
	fmt.Printf("log det %.1f, round trip within 1e-6: %v\n", logdet[0], worst < 1e-6)
	// Output:
	// log det 0.0, round trip within 1e-6: true
}
