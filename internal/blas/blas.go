// Package blas installs a float32 BLAS for gonum's blas32 whose matrix
// products run in OpenBLAS. The flow's training and scoring are dominated by
// Sgemm, and gonum's pure-Go kernel is an order of magnitude slower than
// OpenBLAS on the same cores; everything else keeps gonum's implementation.
//
// Build with the tag noopenblas (or without cgo) to fall back to pure Go.
package blas

import (
	"sync"

	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// The interface check keeps Implementation usable wherever gonum expects a
// float32 BLAS, whichever build variant is compiled.
var _ gblas.Float32 = Implementation{}

var useOnce sync.Once

// Use installs Implementation as blas32's implementation. It is idempotent and
// safe to call from several packages' init or constructors.
func Use() {
	useOnce.Do(func() { blas32.Use(Implementation{}) })
}
