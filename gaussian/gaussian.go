// Package gaussian is the baseline the flow must beat: one multivariate
// Gaussian on the pooled features of good parts, with Ledoit-Wolf shrinkage
// so that it is well conditioned when there are far fewer images than
// feature dimensions (16 images x T transformations against 1280 values).
// An image's score is its squared Mahalanobis distance divided by the
// dimension, on the same scale as the flow's mean of z^2.
package gaussian

import (
	"errors"
	"fmt"
	"math"

	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/mat"

	"github.com/inspectd/inspectd/internal/blas"
)

// Param is one named parameter tensor; Data aliases the model's storage so
// that a loader can fill New(dim)'s parameters in place.
type Param struct {
	Name  string
	Shape []int
	Data  []float32
}

// Model is a fitted Gaussian. It is read-only after Fit or loading, so
// Score and ScoreGrad may run concurrently.
type Model struct {
	dim  int
	mean []float32
	// precChol is W = L^-1 for the covariance's Cholesky factor L, so the
	// precision is W^T W and the Mahalanobis distance is ||W (x - mean)||^2.
	// Row-major dim x dim, lower triangular.
	precChol  []float32
	shrinkage []float32 // one value: the Ledoit-Wolf weight on the identity target
}

// New returns an unfitted model whose Params a loader fills.
func New(dim int) (*Model, error) {
	if dim < 1 {
		return nil, fmt.Errorf("gaussian: dimension %d, need at least 1", dim)
	}
	blas.Use()
	return &Model{dim: dim, mean: make([]float32, dim), precChol: make([]float32, dim*dim), shrinkage: make([]float32, 1)}, nil
}

// Dim is the feature vector length.
func (m *Model) Dim() int { return m.dim }

// Shrinkage is the Ledoit-Wolf weight in [0, 1] given to the scaled
// identity: 0 trusts the sample covariance, 1 ignores correlations.
func (m *Model) Shrinkage() float64 { return float64(m.shrinkage[0]) }

// Params lists mean [dim], prec_chol [dim, dim] (lower-triangular W with
// precision W^T W) and shrinkage [1], in that order.
func (m *Model) Params() []Param {
	return []Param{
		{Name: "mean", Shape: []int{m.dim}, Data: m.mean},
		{Name: "prec_chol", Shape: []int{m.dim, m.dim}, Data: m.precChol},
		{Name: "shrinkage", Shape: []int{1}, Data: m.shrinkage},
	}
}

// Validate checks loaded parameters: finite values, a lower-triangular
// factor with a positive diagonal (so the precision is positive definite).
func (m *Model) Validate() error {
	for i, v := range m.mean {
		if !finite(v) {
			return fmt.Errorf("gaussian: mean[%d] is %v", i, v)
		}
	}
	d := m.dim
	for i := 0; i < d; i++ {
		for j := 0; j < d; j++ {
			v := m.precChol[i*d+j]
			switch {
			case !finite(v):
				return fmt.Errorf("gaussian: prec_chol[%d,%d] is %v", i, j, v)
			case j > i && v != 0:
				return fmt.Errorf("gaussian: prec_chol[%d,%d] = %v above the diagonal, want lower triangular", i, j, v)
			case j == i && v <= 0:
				return fmt.Errorf("gaussian: prec_chol[%d,%d] = %v, want a positive diagonal", i, j, v)
			}
		}
	}
	if s := m.shrinkage[0]; !(s >= 0 && s <= 1) {
		return fmt.Errorf("gaussian: shrinkage %v outside [0, 1]", s)
	}
	return nil
}

func finite(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }

// ErrNoVariance means every feature was constant across the fit samples.
var ErrNoVariance = errors.New("gaussian: features have zero variance")

// Fit estimates the mean and a Ledoit-Wolf shrunk covariance of n vectors
// (row-major, n x dim) in float64 and stores the inverse Cholesky factor.
func Fit(x []float32, n, dim int) (*Model, error) {
	if dim < 1 {
		return nil, fmt.Errorf("gaussian: fit: dimension %d, need at least 1", dim)
	}
	if n < 2 {
		return nil, fmt.Errorf("gaussian: fit: %d samples, need at least 2", n)
	}
	if len(x) != n*dim {
		return nil, fmt.Errorf("gaussian: fit: %d values for %d samples of dim %d", len(x), n, dim)
	}
	for i, v := range x {
		if !finite(v) {
			return nil, fmt.Errorf("gaussian: fit: value %d (sample %d) is %v", i, i/dim, v)
		}
	}
	m, err := New(dim)
	if err != nil {
		return nil, err
	}
	mean := make([]float64, dim)
	for i := 0; i < n; i++ {
		for j, v := range x[i*dim : (i+1)*dim] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
		m.mean[j] = float32(mean[j])
	}
	xc := make([]float64, n*dim)
	var sumNorm4 float64
	for i := 0; i < n; i++ {
		var nn float64
		for j, v := range x[i*dim : (i+1)*dim] {
			c := float64(v) - mean[j]
			xc[i*dim+j] = c
			nn += c * c
		}
		sumNorm4 += nn * nn
	}
	// Maximum-likelihood covariance S = Xc^T Xc / n, as Ledoit and Wolf use.
	var s mat.SymDense
	s.SymOuterK(1/float64(n), mat.NewDense(n, dim, xc).T())

	p := float64(dim)
	var trace, frob2 float64
	for i := 0; i < dim; i++ {
		trace += s.At(i, i)
		for j := 0; j < dim; j++ {
			frob2 += s.At(i, j) * s.At(i, j)
		}
	}
	mu := trace / p
	if mu <= 0 {
		return nil, ErrNoVariance
	}
	// delta^2 = ||S - mu I||^2 / p; beta^2 = sum_k ||x_k x_k^T - S||^2 / (n^2 p),
	// where the sum simplifies to sum_k ||x_k||^4 - n ||S||^2.
	delta2 := (frob2 - 2*mu*trace + mu*mu*p) / p
	beta2 := max(0, sumNorm4-float64(n)*frob2) / (float64(n) * float64(n) * p)
	shrink := 1.0
	if delta2 > 0 {
		shrink = min(beta2, delta2) / delta2
	}
	m.shrinkage[0] = float32(shrink)

	sigma := mat.NewSymDense(dim, nil)
	for i := 0; i < dim; i++ {
		for j := i; j < dim; j++ {
			v := (1 - shrink) * s.At(i, j)
			if i == j {
				v += shrink * mu
			}
			sigma.SetSym(i, j, v)
		}
	}
	var chol mat.Cholesky
	// Shrinkage keeps sigma positive definite in exact arithmetic; a tiny
	// ridge covers rounding when shrinkage is near 0 and n < dim.
	diag := make([]float64, dim)
	for i := range diag {
		diag[i] = sigma.At(i, i)
	}
	for ridge := 1e-10 * mu; !chol.Factorize(sigma); ridge *= 10 {
		if ridge > 1e-3*mu {
			return nil, fmt.Errorf("gaussian: fit: covariance not positive definite even with a ridge of %g", ridge/10)
		}
		for i := range diag {
			sigma.SetSym(i, i, diag[i]+ridge)
		}
	}
	var l, w mat.TriDense
	chol.LTo(&l)
	if err := w.InverseTri(&l); err != nil {
		return nil, fmt.Errorf("gaussian: fit: inverting the Cholesky factor: %w", err)
	}
	for i := 0; i < dim; i++ {
		for j := 0; j <= i; j++ {
			m.precChol[i*dim+j] = float32(w.At(i, j))
		}
	}
	return m, nil
}

func (m *Model) check(what string, x []float32, n int) {
	if n < 0 || len(x) != n*m.dim {
		panic(fmt.Sprintf("gaussian: %s: %d values for %d rows of dim %d", what, len(x), n, m.dim))
	}
}

// whiten returns A with rows a_i = W (x_i - mean).
func (m *Model) whiten(x []float32, n int) []float32 {
	d := m.dim
	c := make([]float32, n*d)
	for i := 0; i < n; i++ {
		for j, v := range x[i*d : (i+1)*d] {
			c[i*d+j] = v - m.mean[j]
		}
	}
	a := make([]float32, n*d)
	blas32.Implementation().Sgemm(gblas.NoTrans, gblas.Trans, n, d, d, 1, c, d, m.precChol, d, 0, a, d)
	return a
}

func (m *Model) scores(a []float32, n int) []float32 {
	d := m.dim
	s := make([]float32, n)
	for i := range s {
		var ss float64
		for _, v := range a[i*d : (i+1)*d] {
			ss += float64(v) * float64(v)
		}
		s[i] = float32(ss / float64(d))
	}
	return s
}

// Score is each row's squared Mahalanobis distance divided by Dim. Rows of
// the fitted distribution score about 1. Shape mismatches panic.
func (m *Model) Score(x []float32, n int) []float32 {
	m.check("Score", x, n)
	if n == 0 {
		return []float32{}
	}
	return m.scores(m.whiten(x, n), n)
}

// ScoreGrad returns Score and each row's gradient, 2 P (x - mean) / Dim.
func (m *Model) ScoreGrad(x []float32, n int) (scores, dx []float32) {
	m.check("ScoreGrad", x, n)
	if n == 0 {
		return []float32{}, []float32{}
	}
	d := m.dim
	a := m.whiten(x, n)
	scores = m.scores(a, n)
	dx = make([]float32, n*d)
	blas32.Implementation().Sgemm(gblas.NoTrans, gblas.NoTrans, n, d, d, float32(2/float64(d)), a, d, m.precChol, d, 0, dx, d)
	return scores, dx
}

// Whiten returns rows W (x_i - mean): the fitted distribution becomes a
// standard normal. A flow trained on whitened vectors starts out (as the
// identity) scoring exactly like this Gaussian.
func (m *Model) Whiten(x []float32, n int) []float32 {
	m.check("Whiten", x, n)
	return m.whiten(x, n)
}

// WhitenBackward maps gradients with respect to whitened rows back to the
// input rows: g_i W.
func (m *Model) WhitenBackward(g []float32, n int) []float32 {
	m.check("WhitenBackward", g, n)
	d := m.dim
	dx := make([]float32, n*d)
	if n > 0 {
		blas32.Implementation().Sgemm(gblas.NoTrans, gblas.NoTrans, n, d, d, 1, g, d, m.precChol, d, 0, dx, d)
	}
	return dx
}
