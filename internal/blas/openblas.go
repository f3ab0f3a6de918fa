//go:build cgo && !noopenblas

package blas

/*
#cgo LDFLAGS: -lopenblas
#include <stdlib.h>
#include <string.h>
#include <cblas.h>

// Present only in OpenBLAS builds with DYNAMIC_ARCH; weak so that other
// builds still link.
extern char *gotoblas_corename(void) __attribute__((weak));
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));

static const char *inspectd_corename(void) {
	return gotoblas_corename ? gotoblas_corename() : "";
}

// inspectd_fix_core re-selects the kernels when OpenBLAS did not recognise the
// CPU and fell back to Prescott (SSE3) on a machine with AVX2 or AVX-512.
// Debian bookworm's OpenBLAS 0.3.21 does this on Sapphire/Emerald Rapids and
// runs Sgemm about five times slower. An explicit OPENBLAS_CORETYPE wins.
static int inspectd_fix_core(void) {
#if defined(__x86_64__)
	if (!gotoblas_corename || !gotoblas_dynamic_init || !gotoblas_dynamic_quit) return 0;
	if (getenv("OPENBLAS_CORETYPE") != NULL) return 0;
	if (strcmp(gotoblas_corename(), "Prescott") != 0) return 0;
	__builtin_cpu_init();
	const char *core = NULL;
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) core = "SkylakeX";
	else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) core = "Haswell";
	else if (__builtin_cpu_supports("avx")) core = "Sandybridge";
	if (core == NULL) return 0;
	// gotoblas_dynamic_init reads the core from the environment only; the
	// variable is removed again so that child processes detect for themselves.
	setenv("OPENBLAS_CORETYPE", core, 1);
	gotoblas_dynamic_quit();
	gotoblas_dynamic_init();
	unsetenv("OPENBLAS_CORETYPE");
	return 1;
#else
	return 0;
#endif
}
*/
import "C"

import (
	"unsafe"

	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// OpenBLAS reports whether matrix products go to OpenBLAS in this build.
const OpenBLAS = true

// smallWork is the multiply-add count under which the cgo call and OpenBLAS's
// setup cost more than gonum's kernel saves.
const smallWork = 4096

// Implementation is gonum's pure-Go BLAS with Sgemm and Sgemv done by OpenBLAS.
type Implementation struct {
	gonum.Implementation
}

// coreFixed records whether init had to override OpenBLAS's CPU detection.
var coreFixed bool

// The kernel table is swapped before main runs, while no goroutine can be
// inside OpenBLAS.
func init() { coreFixed = C.inspectd_fix_core() != 0 }

// Core names the kernel set OpenBLAS uses (empty when the library does not
// say) and whether this package overrode a detection that fell back to
// Prescott.
func Core() (name string, overridden bool) {
	return C.GoString(C.inspectd_corename()), coreFixed
}

// SetThreads sets how many threads OpenBLAS uses for one call. Callers that
// already run several products in parallel goroutines may want 1.
func SetThreads(n int) {
	if n < 1 {
		n = 1
	}
	C.openblas_set_num_threads(C.int(n))
}

// Threads returns OpenBLAS's current thread count.
func Threads() int { return int(C.openblas_get_num_threads()) }

func trans(t gblas.Transpose) C.enum_CBLAS_TRANSPOSE {
	switch t {
	case gblas.NoTrans:
		return C.CblasNoTrans
	case gblas.Trans, gblas.ConjTrans:
		return C.CblasTrans
	}
	panic("blas: illegal transpose")
}

// Sgemm computes C = alpha * op(A) * op(B) + beta * C for row-major matrices.
// Arguments are checked exactly as gonum checks them, because OpenBLAS would
// otherwise read or write past the Go slices.
func (impl Implementation) Sgemm(tA, tB gblas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb := trans(tA), trans(tB)
	aT, bT := ta == C.CblasTrans, tb == C.CblasTrans
	if m < 0 || n < 0 || k < 0 {
		panic("blas: negative dimension")
	}
	if (aT && lda < max(1, m)) || (!aT && lda < max(1, k)) {
		panic("blas: bad lda")
	}
	if (bT && ldb < max(1, k)) || (!bT && ldb < max(1, n)) {
		panic("blas: bad ldb")
	}
	if ldc < max(1, n) {
		panic("blas: bad ldc")
	}
	if m == 0 || n == 0 {
		return
	}
	if m*n*k < smallWork || k == 0 {
		impl.Implementation.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if (aT && len(a) < (k-1)*lda+m) || (!aT && len(a) < (m-1)*lda+k) {
		panic("blas: insufficient length of a")
	}
	if (bT && len(b) < (n-1)*ldb+k) || (!bT && len(b) < (k-1)*ldb+n) {
		panic("blas: insufficient length of b")
	}
	if len(c) < (m-1)*ldc+n {
		panic("blas: insufficient length of c")
	}
	C.cblas_sgemm(C.CblasRowMajor, ta, tb, C.blasint(m), C.blasint(n), C.blasint(k),
		C.float(alpha), (*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda),
		(*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}

// Sgemv computes y = alpha * op(A) * x + beta * y for a row-major A.
func (impl Implementation) Sgemv(tA gblas.Transpose, m, n int, alpha float32, a []float32, lda int, x []float32, incX int, beta float32, y []float32, incY int) {
	ta := trans(tA)
	if m < 0 || n < 0 {
		panic("blas: negative dimension")
	}
	if lda < max(1, n) {
		panic("blas: bad lda")
	}
	if incX <= 0 || incY <= 0 || m*n < smallWork {
		// Negative increments are rare here; gonum handles them and the
		// small cases without a cgo round trip.
		impl.Implementation.Sgemv(tA, m, n, alpha, a, lda, x, incX, beta, y, incY)
		return
	}
	lenX, lenY := n, m
	if ta == C.CblasTrans {
		lenX, lenY = m, n
	}
	if len(a) < lda*(m-1)+n {
		panic("blas: insufficient length of a")
	}
	if len(x) < 1+(lenX-1)*incX {
		panic("blas: insufficient length of x")
	}
	if len(y) < 1+(lenY-1)*incY {
		panic("blas: insufficient length of y")
	}
	C.cblas_sgemv(C.CblasRowMajor, ta, C.blasint(m), C.blasint(n), C.float(alpha),
		(*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda),
		(*C.float)(unsafe.Pointer(&x[0])), C.blasint(incX), C.float(beta),
		(*C.float)(unsafe.Pointer(&y[0])), C.blasint(incY))
}
