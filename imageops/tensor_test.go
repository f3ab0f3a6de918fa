package imageops

import (
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

var (
	imagenetMean = [3]float32{0.485, 0.456, 0.406}
	imagenetStd  = [3]float32{0.229, 0.224, 0.225}
)

func formula(v uint8, c int) float32 {
	return (float32(v)/255 - imagenetMean[c]) / imagenetStd[c]
}

func TestToCHWFormula(t *testing.T) {
	const size = 6
	src := randomMat(t, size, size, gocv.MatTypeCV8UC3, 9)
	defer src.Close()
	dst := make([]float32, 3*size*size)
	if err := ToCHW(src, size, imagenetMean, imagenetStd, dst); err != nil {
		t.Fatal(err)
	}
	n := size * size
	for y := range size {
		for x := range size {
			bgr := src.GetVecbAt(y, x)
			for c := range 3 { // c is the RGB plane; BGR index is 2-c
				got := dst[c*n+y*size+x]
				if want := formula(bgr[2-c], c); got != want {
					t.Fatalf("plane %d pixel (%d,%d) = %v, want %v", c, x, y, got, want)
				}
			}
		}
	}
}

func TestToCHWResize(t *testing.T) {
	// A uniform colour survives any resize, so the expected values are known.
	tests := []struct {
		name       string
		rows, cols int
		size       int
	}{
		{"shrink", 100, 150, 32},
		{"grow", 10, 12, 32},
		{"mixed", 10, 300, 32},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(10, 128, 250, 0), tc.rows, tc.cols, gocv.MatTypeCV8UC3)
			defer src.Close()
			dst := make([]float32, 3*tc.size*tc.size)
			if err := ToCHW(src, tc.size, imagenetMean, imagenetStd, dst); err != nil {
				t.Fatal(err)
			}
			n := tc.size * tc.size
			want := [3]float32{formula(250, 0), formula(128, 1), formula(10, 2)}
			for i, v := range dst {
				if v != want[i/n] {
					t.Fatalf("value %d (plane %d) = %v, want %v", i, i/n, v, want[i/n])
				}
			}
		})
	}
}

func TestToCHWCroppedView(t *testing.T) {
	// A non-continuous view (a Region) must read its own pixels only.
	src := randomMat(t, 20, 30, gocv.MatTypeCV8UC3, 10)
	defer src.Close()
	view := src.Region(imageRect(5, 3, 8, 8))
	defer view.Close()
	crop, err := Crop(src, imageRect(5, 3, 8, 8))
	if err != nil {
		t.Fatal(err)
	}
	defer crop.Close()
	a := make([]float32, 3*64)
	b := make([]float32, 3*64)
	if err := ToCHW(view, 8, imagenetMean, imagenetStd, a); err != nil {
		t.Fatal(err)
	}
	if err := ToCHW(crop, 8, imagenetMean, imagenetStd, b); err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("view and crop differ at %d", i)
		}
	}
}

func TestToCHWErrors(t *testing.T) {
	img := randomMat(t, 8, 8, gocv.MatTypeCV8UC3, 11)
	defer img.Close()
	gray := randomMat(t, 8, 8, gocv.MatTypeCV8UC1, 12)
	defer gray.Close()
	empty := gocv.NewMat()
	defer empty.Close()
	tests := []struct {
		name string
		src  gocv.Mat
		size int
		dst  int
		std  [3]float32
		want string
	}{
		{"short dst", img, 8, 3*64 - 1, imagenetStd, "dst holds"},
		{"zero size", img, 0, 0, imagenetStd, "size 0"},
		{"gray", gray, 8, 3 * 64, imagenetStd, "3-channel"},
		{"empty", empty, 8, 3 * 64, imagenetStd, "empty image"},
		{"zero std", img, 8, 3 * 64, [3]float32{1, 0, 1}, "std[1] is zero"},
	}
	for _, tc := range tests {
		err := ToCHW(tc.src, tc.size, imagenetMean, tc.std, make([]float32, tc.dst))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func BenchmarkToCHW448(b *testing.B) {
	for _, in := range []struct {
		name string
		side int
	}{{"from448", 448}, {"from1024", 1024}, {"from224", 224}} {
		b.Run(in.name, func(b *testing.B) {
			src := randomMat(b, in.side, in.side, gocv.MatTypeCV8UC3, 13)
			defer src.Close()
			dst := make([]float32, 3*448*448)
			b.ResetTimer()
			for b.Loop() {
				if err := ToCHW(src, 448, imagenetMean, imagenetStd, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
