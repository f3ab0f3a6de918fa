package imageops

import (
	"fmt"
	"image"
	"slices"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

func TestParseROI(t *testing.T) {
	tests := []struct {
		in      string
		want    image.Rectangle
		wantErr string
	}{
		{"10,20,30,40", image.Rect(10, 20, 40, 60), ""},
		{" 0, 0 ,5,5 ", image.Rect(0, 0, 5, 5), ""},
		{"1,2,3", image.Rectangle{}, "4 integers"},
		{"1,2,3,4,5", image.Rectangle{}, "4 integers"},
		{"a,2,3,4", image.Rectangle{}, "x is not an integer"},
		{"1,2,3,4.5", image.Rectangle{}, "h is not an integer"},
		{"-1,2,3,4", image.Rectangle{}, "x and y must be >= 0"},
		{"1,2,0,4", image.Rectangle{}, "w and h must be > 0"},
		{"", image.Rectangle{}, "4 integers"},
		{"9223372036854775807,0,1,1", image.Rectangle{}, "at most 1048576"},
		{"0,0,1048577,1", image.Rectangle{}, "at most 1048576"},
		{"1048576,1048576,1048576,1048576", image.Rect(1048576, 1048576, 2097152, 2097152), ""},
	}
	for _, tc := range tests {
		got, err := ParseROI(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseROI(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseROI(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParseROI: a region is refused or is a non-empty rectangle that reads
// back as the same numbers (no overflow turning it inside out). Run with
// go test -run '^$' -fuzz FuzzParseROI -fuzztime 30s ./imageops/
func FuzzParseROI(f *testing.F) {
	for _, s := range []string{"10,20,30,40", " 0, 0 ,5,5 ", "1,2,3", "-1,2,3,4", "9223372036854775807,0,1,1", "+1,2,3,4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseROI(s)
		if err != nil {
			return
		}
		if r.Empty() || r.Min.X < 0 || r.Min.Y < 0 {
			t.Fatalf("ParseROI(%q) = %v", s, r)
		}
		again, err := ParseROI(fmt.Sprintf("%d,%d,%d,%d", r.Min.X, r.Min.Y, r.Dx(), r.Dy()))
		if err != nil || again != r {
			t.Fatalf("ParseROI(%q) = %v, which reads back as %v, %v", s, r, again, err)
		}
		opt, err := ParseOptionalROI(s)
		if err != nil || opt != r {
			t.Fatalf("ParseOptionalROI(%q) = %v, %v; ParseROI gave %v", s, opt, err, r)
		}
	})
}

func TestParseOptionalROI(t *testing.T) {
	if r, err := ParseOptionalROI(""); err != nil || r != (image.Rectangle{}) {
		t.Fatalf("ParseOptionalROI(\"\") = %v, %v; want the zero rectangle", r, err)
	}
	if _, err := ParseOptionalROI("1,2"); err == nil {
		t.Fatal("ParseOptionalROI accepted \"1,2\"")
	}
}

func TestCrop(t *testing.T) {
	src := randomMat(t, 30, 50, gocv.MatTypeCV8UC3, 5)
	defer src.Close()
	tests := []struct {
		name    string
		r       image.Rectangle
		wantErr string
	}{
		{"inside", image.Rect(10, 5, 30, 25), ""},
		{"whole", image.Rect(0, 0, 50, 30), ""},
		{"empty", image.Rect(10, 10, 10, 20), "empty rectangle"},
		{"past right edge", image.Rect(40, 0, 51, 10), "outside the 50x30 image"},
		{"past bottom", image.Rect(0, 25, 10, 31), "outside the 50x30 image"},
		{"negative", image.Rect(-1, 0, 10, 10), "outside"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Crop(src, tc.r)
			if tc.wantErr != "" {
				if err == nil {
					got.Close()
					t.Fatalf("Crop succeeded, want error containing %q", tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			if got.Cols() != tc.r.Dx() || got.Rows() != tc.r.Dy() || !got.IsContinuous() {
				t.Fatalf("got %dx%d (continuous %v), want %dx%d continuous", got.Cols(), got.Rows(), got.IsContinuous(), tc.r.Dx(), tc.r.Dy())
			}
			for _, p := range []image.Point{{0, 0}, {tc.r.Dx() - 1, tc.r.Dy() - 1}, {3, 2}} {
				a := got.GetVecbAt(p.Y, p.X)
				b := src.GetVecbAt(p.Y+tc.r.Min.Y, p.X+tc.r.Min.X)
				if a[0] != b[0] || a[1] != b[1] || a[2] != b[2] {
					t.Errorf("pixel %v = %v, source has %v", p, a, b)
				}
			}
		})
	}
}

// rotateCCW is the reference: transpose then flip vertically.
func rotateCCW(t *testing.T, m gocv.Mat) gocv.Mat {
	t.Helper()
	tr := gocv.NewMat()
	defer tr.Close()
	gocv.Transpose(m, &tr)
	out := gocv.NewMat()
	gocv.Flip(tr, &out, 0)
	return out
}

func TestRotate90MatchesTransposeFlip(t *testing.T) {
	// Rotate keeps the size, so on a non-square image only the central square
	// maps onto itself; compare that square with the reference rotation of it.
	tests := []struct {
		name       string
		rows, cols int
		typ        gocv.MatType
	}{
		{"wide 8UC3", 30, 40, gocv.MatTypeCV8UC3},
		{"tall 8UC3", 41, 27, gocv.MatTypeCV8UC3},
		{"square even 8UC3", 32, 32, gocv.MatTypeCV8UC3},
		{"wide 32FC1", 20, 36, gocv.MatTypeCV32F},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := randomMat(t, tc.rows, tc.cols, gocv.MatTypeCV8UC3, 6)
			defer src.Close()
			if tc.typ == gocv.MatTypeCV32F {
				gray := gocv.NewMat()
				defer gray.Close()
				gocv.CvtColor(src, &gray, gocv.ColorBGRToGray)
				gray.ConvertTo(&src, gocv.MatTypeCV32F)
			}
			n := min(tc.rows, tc.cols)
			if (tc.rows-n)%2 != 0 || (tc.cols-n)%2 != 0 {
				n-- // the square must share the image's centre
			}
			sq := image.Rect((tc.cols-n)/2, (tc.rows-n)/2, (tc.cols+n)/2, (tc.rows+n)/2)

			rot := Rotate(src, 90)
			defer rot.Close()
			if rot.Rows() != tc.rows || rot.Cols() != tc.cols || rot.Type() != tc.typ {
				t.Fatalf("Rotate changed shape/type: %dx%d %v", rot.Cols(), rot.Rows(), rot.Type())
			}
			got, err := Crop(rot, sq)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			centre, err := Crop(src, sq)
			if err != nil {
				t.Fatal(err)
			}
			defer centre.Close()
			want := rotateCCW(t, centre)
			defer want.Close()
			if !equalMats(t, got, want) {
				t.Error("Rotate(+90) centre differs from transpose+flip")
			}
			// And the other direction is the inverse.
			back := Rotate(rot, -90)
			defer back.Close()
			b, err := Crop(back, sq)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if !equalMats(t, b, centre) {
				t.Error("Rotate(-90) does not undo Rotate(+90) on the central square")
			}
		})
	}
}

func TestRotateIdentityAndBorder(t *testing.T) {
	src := randomMat(t, 21, 34, gocv.MatTypeCV8UC3, 7)
	defer src.Close()
	for _, deg := range []float64{0, 360, -360} {
		r := Rotate(src, deg)
		if !equalMats(t, r, src) {
			t.Errorf("Rotate(%v) is not the identity", deg)
		}
		r.Close()
	}

	// Reflect-101 border: a uniform image stays uniform at any angle, where
	// a constant border would leave black corners.
	flat := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(90, 120, 150, 0), 40, 60, gocv.MatTypeCV8UC3)
	defer flat.Close()
	for _, deg := range []float64{17, 45, -133} {
		r := Rotate(flat, deg)
		for _, v := range bytesOf(t, r) {
			if v != 90 && v != 120 && v != 150 {
				t.Fatalf("Rotate(%v) of a uniform image has value %d: border is not reflected", deg, v)
			}
		}
		if c := r.GetVecbAt(0, 0); c[0] != 90 || c[1] != 120 || c[2] != 150 {
			t.Errorf("Rotate(%v) corner = %v", deg, c)
		}
		r.Close()
	}
}

func TestFlips(t *testing.T) {
	src := randomMat(t, 5, 7, gocv.MatTypeCV8UC3, 8)
	defer src.Close()
	h := HFlip(src)
	defer h.Close()
	v := VFlip(src)
	defer v.Close()
	for _, p := range []image.Point{{0, 0}, {6, 4}, {2, 1}} {
		if a, b := h.GetVecbAt(p.Y, p.X), src.GetVecbAt(p.Y, 6-p.X); a[0] != b[0] || a[2] != b[2] {
			t.Errorf("HFlip at %v = %v, want %v", p, a, b)
		}
		if a, b := v.GetVecbAt(p.Y, p.X), src.GetVecbAt(4-p.Y, p.X); a[0] != b[0] || a[2] != b[2] {
			t.Errorf("VFlip at %v = %v, want %v", p, a, b)
		}
	}
}

func TestShift(t *testing.T) {
	src := randomMat(t, 9, 11, gocv.MatTypeCV8UC3, 9)
	defer src.Close()
	for _, tc := range []struct{ dx, dy int }{{0, 0}, {3, 0}, {0, -2}, {-4, 5}} {
		out := Shift(src, tc.dx, tc.dy)
		if out.Rows() != 9 || out.Cols() != 11 || out.Type() != src.Type() {
			t.Fatalf("shift %v: %dx%d type %v", tc, out.Cols(), out.Rows(), out.Type())
		}
		for y := range 9 {
			for x := range 11 {
				sx, sy := x-tc.dx, y-tc.dy
				if sx < 0 || sy < 0 || sx >= 11 || sy >= 9 {
					continue // border: reflected, checked below
				}
				if a, b := out.GetVecbAt(y, x), src.GetVecbAt(sy, sx); !slices.Equal(a, b) {
					t.Fatalf("shift %v at (%d,%d) = %v, want %v from (%d,%d)", tc, x, y, a, b, sx, sy)
				}
			}
		}
		if tc.dx == 3 {
			// reflect-101: column 0 of the result comes from source column
			// -3, mirrored about column 0 without repeating it: column 3.
			if a, b := out.GetVecbAt(0, 0), src.GetVecbAt(0, 3); !slices.Equal(a, b) {
				t.Errorf("border at (0,0) = %v, want the mirrored %v", a, b)
			}
		}
		out.Close()
	}
}
