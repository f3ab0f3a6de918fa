package blas

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/gonum"
)

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

func TestSgemmMatchesGonum(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		m, n, k     int
		tA, tB      gblas.Transpose
		alpha, beta float32
		padA, padB  int // extra stride, to exercise sub-matrix views
		padC        int
	}{
		{1, 1, 1, gblas.NoTrans, gblas.NoTrans, 1, 0, 0, 0, 0},
		{7, 5, 3, gblas.NoTrans, gblas.NoTrans, 1, 0, 0, 0, 0},
		{64, 512, 640, gblas.NoTrans, gblas.NoTrans, 1, 0, 0, 0, 0},
		{64, 512, 640, gblas.NoTrans, gblas.NoTrans, 1, 0, 640, 0, 0},
		{64, 640, 512, gblas.NoTrans, gblas.Trans, 0.5, 1, 0, 3, 7},
		{512, 640, 64, gblas.Trans, gblas.NoTrans, 1, 1, 5, 0, 0},
		{33, 65, 17, gblas.Trans, gblas.Trans, -2, 0.25, 2, 2, 2},
		{100, 3, 200, gblas.NoTrans, gblas.ConjTrans, 1, 1, 0, 0, 1},
		{4, 4, 0, gblas.NoTrans, gblas.NoTrans, 1, 3, 0, 0, 0},
	}
	for _, tc := range tests {
		name := fmt.Sprintf("%dx%dx%d_%c%c", tc.m, tc.n, tc.k, tc.tA, tc.tB)
		t.Run(name, func(t *testing.T) {
			ar, ac := tc.m, tc.k
			if tc.tA != gblas.NoTrans {
				ar, ac = tc.k, tc.m
			}
			br, bc := tc.k, tc.n
			if tc.tB != gblas.NoTrans {
				br, bc = tc.n, tc.k
			}
			lda, ldb, ldc := max(1, ac)+tc.padA, max(1, bc)+tc.padB, tc.n+tc.padC
			a := randSlice(r, max(0, ar*lda))
			b := randSlice(r, max(0, br*ldb))
			c0 := randSlice(r, tc.m*ldc)
			want := append([]float32(nil), c0...)
			got := append([]float32(nil), c0...)
			gonum.Implementation{}.Sgemm(tc.tA, tc.tB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, want, ldc)
			Implementation{}.Sgemm(tc.tA, tc.tB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, got, ldc)
			for i := range want {
				// Summation order differs, so allow float32 rounding that
				// grows with sqrt(k).
				tol := 1e-5 * (1 + math.Sqrt(float64(tc.k))) * (1 + math.Abs(float64(want[i])))
				if d := math.Abs(float64(got[i] - want[i])); d > tol {
					t.Fatalf("c[%d] = %g, gonum gives %g (diff %g > %g)", i, got[i], want[i], d, tol)
				}
			}
			// Padding columns of C must stay untouched.
			for i := 0; i < tc.m; i++ {
				for j := tc.n; j < ldc; j++ {
					if got[i*ldc+j] != c0[i*ldc+j] {
						t.Fatalf("padding c[%d,%d] was written", i, j)
					}
				}
			}
		})
	}
}

func TestSgemvMatchesGonum(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	tests := []struct {
		m, n       int
		tA         gblas.Transpose
		incX, incY int
	}{
		{3, 4, gblas.NoTrans, 1, 1},
		{200, 300, gblas.NoTrans, 1, 1},
		{200, 300, gblas.Trans, 2, 3},
		{300, 200, gblas.Trans, -1, 1},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%dx%d_%c_%d_%d", tc.m, tc.n, tc.tA, tc.incX, tc.incY), func(t *testing.T) {
			lx, ly := tc.n, tc.m
			if tc.tA != gblas.NoTrans {
				lx, ly = tc.m, tc.n
			}
			ax, ay := tc.incX, tc.incY
			if ax < 0 {
				ax = -ax
			}
			if ay < 0 {
				ay = -ay
			}
			a := randSlice(r, tc.m*tc.n)
			x := randSlice(r, 1+(lx-1)*ax)
			y0 := randSlice(r, 1+(ly-1)*ay)
			want := append([]float32(nil), y0...)
			got := append([]float32(nil), y0...)
			gonum.Implementation{}.Sgemv(tc.tA, tc.m, tc.n, 1.5, a, tc.n, x, tc.incX, 0.5, want, tc.incY)
			Implementation{}.Sgemv(tc.tA, tc.m, tc.n, 1.5, a, tc.n, x, tc.incX, 0.5, got, tc.incY)
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("y[%d] = %g, gonum gives %g", i, got[i], want[i])
				}
			}
		})
	}
}

func TestSgemmRejectsShortSlices(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("short A did not panic")
		}
	}()
	a := make([]float32, 10) // needs 64*64
	b := make([]float32, 64*64)
	c := make([]float32, 64*64)
	Implementation{}.Sgemm(gblas.NoTrans, gblas.NoTrans, 64, 64, 64, 1, a, 64, b, 64, 0, c, 64)
}

func benchSgemm(b *testing.B, impl gblas.Float32, m, n, k int) {
	r := rand.New(rand.NewPCG(5, 6))
	a, bb, c := randSlice(r, m*k), randSlice(r, k*n), make([]float32, m*n)
	b.SetBytes(0)
	b.ResetTimer()
	for b.Loop() {
		impl.Sgemm(gblas.NoTrans, gblas.NoTrans, m, n, k, 1, a, k, bb, n, 0, c, n)
	}
	b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
}

// The flow's typical products: batch 64, feature half 640, hidden 512/1024.
func BenchmarkSgemm(b *testing.B) {
	shapes := [][3]int{{64, 512, 640}, {64, 1280, 1024}, {256, 256, 256}}
	for _, s := range shapes {
		name := fmt.Sprintf("%dx%dx%d", s[0], s[1], s[2])
		b.Run("openblas/"+name, func(b *testing.B) { benchSgemm(b, Implementation{}, s[0], s[1], s[2]) })
		b.Run("gonum/"+name, func(b *testing.B) { benchSgemm(b, gonum.Implementation{}, s[0], s[1], s[2]) })
	}
}

func TestUseInstalls(t *testing.T) {
	Use()
	if _, ok := blas32.Implementation().(Implementation); !ok {
		t.Fatalf("blas32 uses %T after Use", blas32.Implementation())
	}
}

func TestCoreReported(t *testing.T) {
	name, overridden := Core()
	t.Logf("OpenBLAS core %q, overridden %v", name, overridden)
	if OpenBLAS && overridden && name == "Prescott" {
		t.Fatal("core override did not take effect")
	}
}
