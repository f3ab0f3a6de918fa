//go:build !cgo || noopenblas

package blas

import "gonum.org/v1/gonum/blas/gonum"

// OpenBLAS reports whether matrix products go to OpenBLAS in this build.
const OpenBLAS = false

// Implementation is gonum's pure-Go BLAS; this build has no OpenBLAS.
type Implementation struct {
	gonum.Implementation
}

// SetThreads does nothing without OpenBLAS.
func SetThreads(int) {}

// Threads returns 1: gonum's kernels parallelise on their own.
func Threads() int { return 1 }

// Core reports no OpenBLAS kernel set in this build.
func Core() (name string, overridden bool) { return "", false }
