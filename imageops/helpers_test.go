package imageops

import (
	"image"
	"math/rand/v2"
	"testing"

	"gocv.io/x/gocv"
)

// randomMat returns a rows x cols Mat of type typ (8U depth) with random bytes.
func randomMat(t testing.TB, rows, cols int, typ gocv.MatType, seed uint64) gocv.Mat {
	t.Helper()
	m := gocv.NewMatWithSize(rows, cols, typ)
	b, err := m.DataPtrUint8()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range b {
		b[i] = uint8(rng.IntN(256))
	}
	return m
}

// bytesOf copies a Mat's pixels (continuous or not).
func bytesOf(t testing.TB, m gocv.Mat) []byte {
	t.Helper()
	b, release, err := pixelBytes(m)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	return append([]byte(nil), b...)
}

func equalMats(t testing.TB, a, b gocv.Mat) bool {
	t.Helper()
	if a.Rows() != b.Rows() || a.Cols() != b.Cols() || a.Type() != b.Type() {
		return false
	}
	x, y := bytesOf(t, a), bytesOf(t, b)
	for i := range x {
		if x[i] != y[i] {
			return false
		}
	}
	return true
}

func imageRect(x, y, w, h int) image.Rectangle { return image.Rect(x, y, x+w, y+h) }
