package evalstats

import (
	"math"
	"slices"
	"testing"
)

func TestKFoldPartitions(t *testing.T) {
	tests := []struct{ n, k, wantFolds int }{
		{16, 4, 4}, {16, 5, 5}, {16, 16, 16}, {10, 3, 3}, {5, 8, 5}, {1, 2, 1}, {7, 1, 1},
	}
	for _, tc := range tests {
		folds := KFold(tc.n, tc.k, 42)
		if len(folds) != tc.wantFolds {
			t.Errorf("n=%d k=%d: %d folds, want %d", tc.n, tc.k, len(folds), tc.wantFolds)
		}
		seen := make([]int, tc.n)
		lo, hi := math.MaxInt, 0
		for _, f := range folds {
			lo, hi = min(lo, len(f)), max(hi, len(f))
			for _, i := range f {
				seen[i]++
			}
			train := TrainIndices(tc.n, f)
			if len(train)+len(f) != tc.n {
				t.Errorf("n=%d: train %d + test %d", tc.n, len(train), len(f))
			}
			for _, i := range train {
				if slices.Contains(f, i) {
					t.Errorf("index %d in both train and test", i)
				}
			}
		}
		for i, c := range seen {
			if c != 1 {
				t.Errorf("n=%d k=%d: index %d in %d folds", tc.n, tc.k, i, c)
			}
		}
		if hi-lo > 1 {
			t.Errorf("n=%d k=%d: fold sizes %d..%d", tc.n, tc.k, lo, hi)
		}
	}
}

func TestKFoldSeed(t *testing.T) {
	a, b, c := KFold(16, 4, 1), KFold(16, 4, 1), KFold(16, 4, 2)
	if !slices.EqualFunc(a, b, slices.Equal) {
		t.Error("same seed gave different folds")
	}
	if slices.EqualFunc(a, c, slices.Equal) {
		t.Error("different seeds gave the same folds")
	}
	if KFold(0, 3, 1) != nil {
		t.Error("n=0: want no folds")
	}
	defer func() {
		if recover() == nil {
			t.Error("k=0: want panic")
		}
	}()
	KFold(4, 0, 1)
}
