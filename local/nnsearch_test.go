package local

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// spectrumRows makes n rows of width dim whose variance decays along
// directions like patch features do, around a few cluster centres, so that
// near neighbours exist and the first pass has something to prune.
func spectrumRows(rng *rand.Rand, centres []float32, n, dim int, noise float64) []float32 {
	k := len(centres) / dim
	x := make([]float32, n*dim)
	for i := 0; i < n; i++ {
		c := centres[rng.IntN(k)*dim:]
		for d := 0; d < dim; d++ {
			s := noise / math.Sqrt(1+float64(d)/8)
			x[i*dim+d] = c[d] + float32(rng.NormFloat64()*s)
		}
	}
	return x
}

// TestNNIndexMatchesFullSearch: the two-pass search returns the distance a
// measurement of every bank row returns, with and without rows left out,
// on banks whose directions matter unequally (the realistic case) and on
// isotropic noise (where the first pass prunes least).
func TestNNIndexMatchesFullSearch(t *testing.T) {
	tests := []struct {
		name     string
		m, dim   int
		noise    float64
		owners   int32
		exclude  int32
		constant bool
	}{
		{"structured", 1024, 300, 1, 8, -1, false},
		{"structured, one left out", 1024, 300, 1, 8, 3, false},
		{"isotropic", 600, 256, 0, 4, -1, false},
		{"wide", 700, 1024, 0.5, 4, 1, false},
		{"constant bank", 600, 256, 0, 2, -1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(tc.m)))
			centres := make([]float32, 16*tc.dim)
			for i := range centres {
				centres[i] = float32(rng.NormFloat64() * 2)
			}
			var bank []float32
			if tc.constant {
				bank = make([]float32, tc.m*tc.dim)
				for i := range bank {
					bank[i] = centres[i%tc.dim]
				}
			} else if tc.noise == 0 {
				bank = make([]float32, tc.m*tc.dim)
				for i := range bank {
					bank[i] = float32(rng.NormFloat64())
				}
			} else {
				bank = spectrumRows(rng, centres, tc.m, tc.dim, tc.noise)
			}
			owner := make([]int32, tc.m)
			for j := range owner {
				owner[j] = int32(j) % tc.owners
			}
			norms := rowNorms(bank, tc.m, tc.dim)
			ix, err := newNNIndex(context.Background(), bank, norms, tc.m, tc.dim, 1)
			if err != nil {
				t.Fatal(err)
			}
			if ix.p == 0 {
				t.Fatalf("index of %d x %d rows searches at full width only", tc.m, tc.dim)
			}
			full := &nnIndex{bank: bank, norms: norms, m: tc.m, dim: tc.dim}
			n := 257
			q := spectrumRows(rng, centres, n, tc.dim, max(tc.noise, 0.7))
			copy(q[:tc.dim], bank[5*tc.dim:6*tc.dim]) // a query on a bank row
			var own []int32
			if tc.exclude >= 0 {
				own = owner
			}
			got, err := ix.nearest(context.Background(), q, n, own, tc.exclude)
			if err != nil {
				t.Fatal(err)
			}
			want, err := full.nearest(context.Background(), q, n, own, tc.exclude)
			if err != nil {
				t.Fatal(err)
			}
			// Both searches use |q|^2 + |b|^2 - 2 q.b in float32, so each
			// is held to the float64 distance within that formula's
			// rounding, not to the other.
			for i := range want {
				truth, tol := math.Inf(1), 0.0
				for j := 0; j < tc.m; j++ {
					if own != nil && own[j] == tc.exclude {
						continue
					}
					var s float64
					for d := 0; d < tc.dim; d++ {
						v := float64(q[i*tc.dim+d]) - float64(bank[j*tc.dim+d])
						s += v * v
					}
					if s < truth {
						truth, tol = s, 1e-5*(float64(norms[j])+float64(sqNorm(q[i*tc.dim:(i+1)*tc.dim])))+1e-6
					}
				}
				for name, v := range map[string]float32{"two-pass": got[i], "full search": want[i]} {
					if math.Abs(float64(v)-truth) > tol {
						t.Fatalf("query %d: %s %g, float64 %g (tolerance %g)", i, name, v, truth, tol)
					}
				}
			}
		})
	}
}

func TestOrthonormalize(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	dim, p := 50, 8
	z := make([]float32, dim*p)
	for i := range z {
		z[i] = float32(rng.NormFloat64())
	}
	for d := 0; d < dim; d++ { // column 3 repeats column 1: nothing left of it
		z[d*p+3] = z[d*p+1]
	}
	orthonormalize(z, dim, p)
	for a := 0; a < p; a++ {
		for b := 0; b < p; b++ {
			var dot float64
			for d := 0; d < dim; d++ {
				dot += float64(z[d*p+a]) * float64(z[d*p+b])
			}
			want := 0.0
			if a == b && a != 3 {
				want = 1
			}
			if math.Abs(dot-want) > 1e-5 {
				t.Errorf("columns %d, %d: dot %g, want %g", a, b, dot, want)
			}
		}
	}
}

// BenchmarkNearest compares the two-pass search with measuring every bank
// row, at the default bank (4096 rows) and a 448 px part's 56x56 grid, for
// patch vectors of 512 and 1024 values. Synthetic rows, so the ratio, not
// the time, carries over to real features (the pipeline benchmark has them).
func BenchmarkNearest(b *testing.B) {
	for _, dim := range []int{512, 1024} {
		rng := rand.New(rand.NewPCG(3, uint64(dim)))
		centres := make([]float32, 64*dim)
		for i := range centres {
			centres[i] = float32(rng.NormFloat64())
		}
		m, n := 4096, 56*56
		bank := spectrumRows(rng, centres, m, dim, 1)
		q := spectrumRows(rng, centres, n, dim, 1)
		norms := rowNorms(bank, m, dim)
		ix, err := newNNIndex(context.Background(), bank, norms, m, dim, 1)
		if err != nil {
			b.Fatal(err)
		}
		full := &nnIndex{bank: bank, norms: norms, m: m, dim: dim}
		for _, c := range []struct {
			name string
			ix   *nnIndex
		}{{"full", full}, {"two-pass", ix}} {
			b.Run(fmt.Sprintf("dim=%d/%s", dim, c.name), func(b *testing.B) {
				for b.Loop() {
					if _, err := c.ix.nearest(context.Background(), q, n, nil, -1); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
