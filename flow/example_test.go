package flow_test

import (
	"context"
	"fmt"
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
