package gaussian_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/inspectd/inspectd/gaussian"
)

// The baseline density: fit on good vectors, then a vector's score is its
// squared Mahalanobis distance over the dimension, about 1 for good ones.
func ExampleFit() {
	const n, dim = 200, 4
	rng := rand.New(rand.NewPCG(1, 1))
	good := make([]float32, n*dim)
	for i := range good {
		good[i] = float32(rng.NormFloat64())
	}
	g, err := gaussian.Fit(good, n, dim)
	if err != nil {
		fmt.Println(err)
		return
	}
	s := g.Score([]float32{
		0, 0, 0, 0, // the centre
		4, 4, 4, 4, // four standard deviations out in every feature
	}, 2)
	fmt.Printf("centre %.1f, outlier %.1f\n", s[0], s[1])
	// The good vectors' true covariance is the identity, Ledoit-Wolf's
	// target, so most of the weight goes to it.
	fmt.Printf("shrinkage %.1f\n", g.Shrinkage())
	// Output:
	// centre 0.0, outlier 15.7
	// shrinkage 0.7
}
