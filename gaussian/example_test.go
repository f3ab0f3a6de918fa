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

// Whiten maps vectors to the fitted distribution's standard-normal
// coordinates; a vector's score is the mean of their squares. A flow on
// whitened vectors therefore starts out scoring exactly as the Gaussian.
func ExampleModel_Whiten() {
	const n, dim = 200, 3
	rng := rand.New(rand.NewPCG(2, 2))
	good := make([]float32, n*dim)
	for i := range n {
		a := rng.NormFloat64()
		for j := range dim {
			good[i*dim+j] = float32(a + 0.2*rng.NormFloat64()) // strongly correlated
		}
	}
	g, err := gaussian.Fit(good, n, dim)
	if err != nil {
		fmt.Println(err)
		return
	}
	x := []float32{1, -1, 1} // each feature ordinary, together unusual
	w := g.Whiten(x, 1)
	var sq float32
	for _, v := range w {
		sq += v * v
	}
	fmt.Printf("mean square %.2f, score %.2f\n", sq/dim, g.Score(x, 1)[0])
	// Output:
	// mean square 18.01, score 18.01
}
