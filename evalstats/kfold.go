package evalstats

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// KFold splits indices 0..n-1 into k shuffled test folds whose sizes differ by
// at most one; every index lands in exactly one fold. The same seed gives the
// same folds. k larger than n is lowered to n (leave-one-out), which is what
// one wants with 16 calibration images. Each fold is sorted ascending.
// It panics on n < 0 or k < 1: those are programming errors, not data.
func KFold(n, k int, seed int64) [][]int {
	if n < 0 || k < 1 {
		panic(fmt.Sprintf("evalstats.KFold: need n >= 0 and k >= 1, got n=%d k=%d", n, k))
	}
	if n == 0 {
		return nil
	}
	k = min(k, n)
	r := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	perm := r.Perm(n)
	folds := make([][]int, k)
	for i := range k {
		f := slices.Clone(perm[i*n/k : (i+1)*n/k])
		slices.Sort(f)
		folds[i] = f
	}
	return folds
}

// TrainIndices returns 0..n-1 without the indices of test: the training set
// that goes with one KFold fold.
func TrainIndices(n int, test []int) []int {
	skip := make([]bool, n)
	for _, i := range test {
		if i >= 0 && i < n {
			skip[i] = true
		}
	}
	out := make([]int, 0, n-len(test))
	for i := range n {
		if !skip[i] {
			out = append(out, i)
		}
	}
	return out
}
