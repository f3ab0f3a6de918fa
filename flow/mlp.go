package flow

import (
	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// dense is one fully connected layer, y = x·W + b, with W stored in-by-out so
// that a row-major batch multiplies without a transpose.
type dense struct {
	in, out int
	w, b    []float32
	gw, gb  []float32
}

// mlp is a subnet: Depth hidden ReLU layers and a linear output layer that
// yields s and t side by side. A conditional subnet's first layer reads the
// half (in values) and the condition (cond values) as one input row; its
// weight keeps the condition's rows after the half's, so that the two
// products need no copy into a joined buffer.
type mlp struct {
	in, cond, out int
	layers        []dense
}

// mlpCache holds, per layer, the layer's output for one batch: post-ReLU for
// hidden layers, raw for the last. Backprop needs all of them.
type mlpCache struct {
	acts [][]float32
}

func gemm(tA, tB gblas.Transpose, m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	blas32.Implementation().Sgemm(tA, tB, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
}

// forward runs the subnet on n rows of x (row stride ldx) with their
// conditions c (n x cond, nil when cond is 0) and writes every layer's
// output into cache.acts, which must be sized by newCache.
func (m *mlp) forward(x []float32, ldx int, c []float32, n int, cache *mlpCache) []float32 {
	in, ld := x, ldx
	for l := range m.layers {
		L := &m.layers[l]
		y := cache.acts[l][:n*L.out]
		for i := 0; i < n; i++ {
			copy(y[i*L.out:(i+1)*L.out], L.b)
		}
		k := L.in
		if l == 0 && m.cond > 0 {
			k = m.in
			gemm(gblas.NoTrans, gblas.NoTrans, n, L.out, m.cond, c, m.cond, L.w[m.in*L.out:], L.out, 1, y, L.out)
		}
		gemm(gblas.NoTrans, gblas.NoTrans, n, L.out, k, in, ld, L.w, L.out, 1, y, L.out)
		if l < len(m.layers)-1 {
			for i, v := range y {
				if v < 0 {
					y[i] = 0
				}
			}
		}
		in, ld = y, L.out
	}
	return in
}

// backward propagates dOut (n x out, overwritten) through the subnet. With
// grads it accumulates parameter gradients; with dx non-nil it adds the input
// gradient into dx (row stride lddx). scratch holds at least n*maxWidth.
// The condition c gets no gradient: it is data, not a parameter.
func (m *mlp) backward(x []float32, ldx int, c []float32, n int, cache *mlpCache, dOut []float32, grads bool, dx []float32, lddx int, scratch []float32) {
	dy := dOut
	for l := len(m.layers) - 1; l >= 0; l-- {
		L := &m.layers[l]
		in, ld := x, ldx
		if l > 0 {
			in, ld = cache.acts[l-1], m.layers[l-1].out
		}
		k := L.in
		if l == 0 && m.cond > 0 {
			k = m.in
			if grads {
				gemm(gblas.Trans, gblas.NoTrans, m.cond, L.out, n, c, m.cond, dy, L.out, 1, L.gw[m.in*L.out:], L.out)
			}
		}
		if grads {
			gemm(gblas.Trans, gblas.NoTrans, k, L.out, n, in, ld, dy, L.out, 1, L.gw, L.out)
			for i := 0; i < n; i++ {
				row := dy[i*L.out : (i+1)*L.out]
				for j, v := range row {
					L.gb[j] += v
				}
			}
		}
		if l == 0 {
			if dx != nil {
				gemm(gblas.NoTrans, gblas.Trans, n, k, L.out, dy, L.out, L.w, L.out, 1, dx, lddx)
			}
			return
		}
		// Alternate between two halves of scratch so dy is never the
		// output it is read from.
		var next []float32
		if l%2 == 0 {
			next = scratch[:n*L.in]
		} else {
			next = scratch[len(scratch)/2 : len(scratch)/2+n*L.in]
		}
		gemm(gblas.NoTrans, gblas.Trans, n, L.in, L.out, dy, L.out, L.w, L.out, 0, next, L.in)
		act := cache.acts[l-1][:n*L.in]
		for i, a := range act {
			if a <= 0 {
				next[i] = 0
			}
		}
		dy = next
	}
}

func (m *mlp) widest() int {
	w := m.in + m.cond
	for _, L := range m.layers {
		w = max(w, L.out)
	}
	return w
}
