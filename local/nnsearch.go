package local

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	ib "github.com/inspectd/inspectd/internal/blas"
)

// searchProj is the width of the subspace the search's first pass works in.
// Measured on ResNet-50 v2 patch vectors at 448 px, the bound it gives
// leaves a handful of bank rows per query to be measured at full width.
const searchProj = 128

// nnIndex finds the nearest bank row of each query row exactly, at a
// fraction of the cost of measuring every distance at full width: a first
// pass in the bank's leading principal subspace gives every bank row a lower
// bound on its distance (the part of the difference inside the subspace,
// plus what the norms of the parts outside it allow), and only the rows
// whose bound beats the best full-width distance found so far are measured.
// The nearest row is the one a full search finds, whatever the subspace; the
// subspace only decides how few rows are measured. Immutable once built, so
// scorers may share it.
type nnIndex struct {
	bank   []float32 // m x dim
	norms  []float32 // squared norms of the bank rows
	m, dim int
	p      int       // subspace width; 0: measure every row at full width
	basis  []float32 // dim x p, orthonormal (or zero) columns
	mean   []float32 // the bank's mean row
	meanP  []float32 // basis^T mean
	meanSq float32   // squared norm of mean
	// keys holds each bank row's coordinates in the subspace (about the
	// mean) and, as one more coordinate, the norm of what lies outside it:
	// the distance between two such keys is a lower bound on the distance
	// between their rows (the outside parts differ by at least the
	// difference of their norms), so one matrix product gives every bound.
	keys  []float32 // m x (p+1)
	kNorm []float32 // squared norms of the keys
}

func newNNIndex(ctx context.Context, bank, norms []float32, m, dim int, seed int64) (*nnIndex, error) {
	ix := &nnIndex{bank: bank, norms: norms, m: m, dim: dim}
	// A narrow or small bank is searched faster at full width than through
	// a first pass and its bookkeeping.
	if dim < 2*searchProj || m < 4*searchProj {
		return ix, nil
	}
	ib.Use()
	impl := blas32.Implementation()
	p := searchProj
	ix.mean = make([]float32, dim)
	for j := 0; j < m; j++ {
		for k, v := range bank[j*dim : (j+1)*dim] {
			ix.mean[k] += v
		}
	}
	for k := range ix.mean {
		ix.mean[k] /= float32(m)
		ix.meanSq += ix.mean[k] * ix.mean[k]
	}
	basis, err := principalBasis(ctx, bank, ix.mean, m, dim, p, seed)
	if err != nil {
		return nil, err
	}
	ix.p, ix.basis = p, basis
	ix.meanP = make([]float32, p)
	impl.Sgemv(blas.Trans, dim, p, 1, basis, p, ix.mean, 1, 0, ix.meanP, 1)
	ix.keys, ix.kNorm = ix.keyRows(bank, norms, m)
	return ix, nil
}

// keyRows returns the keys of n rows of x (see nnIndex.keys) and their
// squared norms.
func (ix *nnIndex) keyRows(x, sq []float32, n int) (keys, kNorm []float32) {
	impl := blas32.Implementation()
	p, w := ix.p, ix.p+1
	keys = make([]float32, n*w)
	impl.Sgemm(blas.NoTrans, blas.NoTrans, n, p, ix.dim, 1, x, ix.dim, ix.basis, p, 0, keys, w)
	kNorm = make([]float32, n)
	for i := 0; i < n; i++ {
		row := keys[i*w : i*w+p]
		for k := range row {
			row[k] -= ix.meanP[k]
		}
		in := sqNorm(row)
		r := residualNorm(sq[i], impl.Sdot(ix.dim, x[i*ix.dim:(i+1)*ix.dim], 1, ix.mean, 1), ix.meanSq, in)
		keys[i*w+p] = r
		kNorm[i] = in + r*r
	}
	return keys, kNorm
}

// residualNorm is the norm of (v - mean) outside the subspace, from v's
// squared norm, v.mean, mean's squared norm and the squared norm of the
// part inside.
func residualNorm(vSq, vDotMean, meanSq, inSq float32) float32 {
	return float32(math.Sqrt(float64(max(vSq-2*vDotMean+meanSq-inSq, 0))))
}

func sqNorm(v []float32) float32 {
	var s float32
	for _, x := range v {
		s += x * x
	}
	return s
}

// principalBasis approximates the leading p principal directions of the
// rows (about mean) by subspace iteration from a seeded random start. Any
// orthonormal basis keeps the search exact; a better one prunes more.
func principalBasis(ctx context.Context, x, mean []float32, m, dim, p int, seed int64) ([]float32, error) {
	impl := blas32.Implementation()
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5ea7c4))
	z := make([]float32, dim*p)
	for i := range z {
		z[i] = float32(rng.NormFloat64())
	}
	orthonormalize(z, dim, p)
	y := make([]float32, m*p)
	mz := make([]float32, p)
	colSum := make([]float32, p)
	for range 3 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// y = (x - 1 mean^T) z
		impl.Sgemm(blas.NoTrans, blas.NoTrans, m, p, dim, 1, x, dim, z, p, 0, y, p)
		impl.Sgemv(blas.Trans, dim, p, 1, z, p, mean, 1, 0, mz, 1)
		clear(colSum)
		for j := 0; j < m; j++ {
			row := y[j*p : (j+1)*p]
			for k := range row {
				row[k] -= mz[k]
				colSum[k] += row[k]
			}
		}
		// z = (x - 1 mean^T)^T y
		impl.Sgemm(blas.Trans, blas.NoTrans, dim, p, m, 1, x, dim, y, p, 0, z, p)
		for d := 0; d < dim; d++ {
			row := z[d*p : (d+1)*p]
			for k := range row {
				row[k] -= mean[d] * colSum[k]
			}
		}
		orthonormalize(z, dim, p)
	}
	return z, nil
}

// orthonormalize makes the p columns of the dim x p matrix z orthonormal by
// modified Gram-Schmidt in float64, twice (once is not enough in float32's
// precision). A column with nothing left of it becomes zero, which keeps the
// subspace's bound valid.
func orthonormalize(z []float32, dim, p int) {
	cols := make([][]float64, p)
	for k := range cols {
		c := make([]float64, dim)
		for d := range c {
			c[d] = float64(z[d*p+k])
		}
		cols[k] = c
	}
	for k, c := range cols {
		n0 := 0.0
		for _, v := range c {
			n0 += v * v
		}
		for range 2 {
			for _, prev := range cols[:k] {
				var dot float64
				for d, v := range c {
					dot += v * prev[d]
				}
				for d := range c {
					c[d] -= dot * prev[d]
				}
			}
		}
		n := 0.0
		for _, v := range c {
			n += v * v
		}
		if n <= 1e-10*n0 || n == 0 {
			clear(c)
			continue
		}
		s := 1 / math.Sqrt(n)
		for d := range c {
			c[d] *= s
		}
	}
	for k, c := range cols {
		for d, v := range c {
			z[d*p+k] = float32(v)
		}
	}
}

// errNoRows is returned when leaving one image out leaves no bank row.
var errNoRows = errors.New("patchcore: no bank rows left after leaving one image out")

// nearest returns the squared distance of each of the n query rows to its
// nearest bank row. With owner non-nil, the rows whose owner is exclude are
// left out (an image's own patches, for its leave-one-out map).
func (ix *nnIndex) nearest(ctx context.Context, x []float32, n int, owner []int32, exclude int32) ([]float32, error) {
	ib.Use()
	if owner != nil && len(owner) != ix.m {
		return nil, fmt.Errorf("patchcore: %d owners for %d bank rows", len(owner), ix.m)
	}
	best := make([]float32, n)
	for i := range best {
		best[i] = float32(math.Inf(1))
	}
	qn := rowNorms(x, n, ix.dim)
	var err error
	if ix.p == 0 {
		err = ix.fullWidth(ctx, x, n, qn, owner, exclude, best)
	} else {
		err = ix.twoPass(ctx, x, n, qn, owner, exclude, best)
	}
	if err != nil {
		return nil, err
	}
	for _, v := range best {
		if math.IsInf(float64(v), 1) {
			return nil, errNoRows
		}
	}
	return best, nil
}

// scoreBlock bounds the distance matrix computed at once (rows x bank rows).
const scoreBlock = 1 << 20

func (ix *nnIndex) fullWidth(ctx context.Context, x []float32, n int, qn []float32, owner []int32, exclude int32, best []float32) error {
	step := max(1, scoreBlock/max(n, 1))
	dots := make([]float32, n*min(step, ix.m))
	impl := blas32.Implementation()
	for start := 0; start < ix.m; start += step {
		if err := ctx.Err(); err != nil {
			return err
		}
		end := min(start+step, ix.m)
		k := end - start
		// dots = x * bank[start:end]^T
		impl.Sgemm(blas.NoTrans, blas.Trans, n, k, ix.dim, 1, x, ix.dim, ix.bank[start*ix.dim:end*ix.dim], ix.dim, 0, dots[:n*k], k)
		norms := ix.norms[start:end]
		for i := 0; i < n; i++ {
			row := dots[i*k : (i+1)*k]
			b := best[i]
			for j, d := range row {
				if owner != nil && owner[start+j] == exclude {
					continue
				}
				if v := qn[i] + norms[j] - 2*d; v < b {
					b = v
				}
			}
			best[i] = b
		}
	}
	return nil
}

// boundSlack shrinks every lower bound by this share of the squared key
// norms it was computed from, so that float32 rounding in the first pass
// can never prune the true nearest row.
const boundSlack = 2e-4

func (ix *nnIndex) twoPass(ctx context.Context, x []float32, n int, qn []float32, owner []int32, exclude int32, best []float32) error {
	impl := blas32.Implementation()
	dim, w, m := ix.dim, ix.p+1, ix.m
	qk, qkNorm := ix.keyRows(x, qn, n)
	step := max(1, min(n, scoreBlock/m))
	dots := make([]float32, step*m)
	// A row's bound is (1-boundSlack)(|query key|^2 + |row key|^2) - 2 dot:
	// the row's part is the same for every query.
	kn := make([]float32, m)
	for j, v := range ix.kNorm {
		kn[j] = (1 - boundSlack) * v
		if owner != nil && owner[j] == exclude {
			kn[j] = float32(math.Inf(1))
		}
	}
	exact := func(q []float32, qn float32, j int) float32 {
		return qn + ix.norms[j] - 2*impl.Sdot(dim, q, 1, ix.bank[j*dim:(j+1)*dim], 1)
	}
	for start := 0; start < n; start += step {
		if err := ctx.Err(); err != nil {
			return err
		}
		end := min(start+step, n)
		k := end - start
		impl.Sgemm(blas.NoTrans, blas.Trans, k, m, w, 1, qk[start*w:end*w], w, ix.keys, w, 0, dots[:k*m], m)
		for i := start; i < end; i++ {
			row := dots[(i-start)*m : (i-start+1)*m]
			kn := kn[:len(row)]
			// Measure the row with the lowest bound first: it is usually
			// the nearest or close to it, which prunes the rest.
			first, firstV := -1, float32(math.Inf(1))
			for j, d := range row {
				v := kn[j] - 2*d
				row[j] = v
				if v < firstV {
					first, firstV = j, v
				}
			}
			if first < 0 || math.IsInf(float64(firstV), 1) {
				continue
			}
			q := x[i*dim : (i+1)*dim]
			c := (1 - boundSlack) * qkNorm[i]
			b := exact(q, qn[i], first)
			for j, v := range row {
				if v+c < b && j != first {
					b = min(b, exact(q, qn[i], j))
				}
			}
			best[i] = b
		}
	}
	return nil
}
