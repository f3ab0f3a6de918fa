//go:build matprofile

package imageops

import (
	"bytes"
	"image"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"
)

// TestNoLeakedMats runs every function, including their error paths, and
// checks that the number of live Mats is unchanged afterwards.
func TestNoLeakedMats(t *testing.T) {
	before := gocv.MatProfile.Count()
	func() {
		src := randomMat(t, 60, 80, gocv.MatTypeCV8UC3, 15)
		defer src.Close()
		png, err := EncodePNG(src)
		if err != nil {
			t.Fatal(err)
		}
		jpg, err := EncodeJPEG(src, 80)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "a.png")
		if err := WriteFileAtomic(path, png); err != nil {
			t.Fatal(err)
		}
		for _, data := range [][]byte{png, jpg, png[:len(png)/2], []byte("text"), nil} {
			if m, err := Decode(data); err == nil {
				m.Close()
			}
		}
		for _, p := range []string{path, filepath.Join(dir, "missing.png")} {
			if m, err := ReadFile(p); err == nil {
				m.Close()
			}
		}
		_ = os.Remove(path)
		for _, r := range []image.Rectangle{image.Rect(5, 5, 30, 30), image.Rect(70, 0, 90, 10)} {
			if m, err := Crop(src, r); err == nil {
				m.Close()
			}
		}
		for _, f := range []func(gocv.Mat) gocv.Mat{
			func(m gocv.Mat) gocv.Mat { return Rotate(m, 33) },
			func(m gocv.Mat) gocv.Mat { return Rotate(m, 0) },
			HFlip, VFlip,
			func(m gocv.Mat) gocv.Mat { return Shift(m, 3, -2) },
			func(m gocv.Mat) gocv.Mat { return Jitter(m, 0.3, 0.3, 0.3, rand.New(rand.NewPCG(1, 1))) },
		} {
			out := f(src)
			out.Close()
		}
		view := src.Region(image.Rect(10, 10, 50, 50))
		dst := make([]float32, 3*32*32)
		for _, m := range []gocv.Mat{src, view} {
			if err := ToCHW(m, 32, imagenetMean, imagenetStd, dst); err != nil {
				t.Fatal(err)
			}
		}
		view.Close()
		heat := gaussMap(7, 7, 3, 3, 1)
		heat = GaussianBlur(RotateMap(ResizeMap(heat, 7, 7, 14, 14), 14, 14, 20), 14, 14, 2)
		guide, err := Guide(src, 14)
		if err != nil {
			t.Fatal(err)
		}
		heat = GuidedFilter(guide, heat, 14, 14, 2, 1e-4)
		ov := Overlay(src, heat, 14, 14, 0, 1)
		ov.Close()
		mm := MapToMat(heat, 14, 14)
		if _, _, _, err := MatToMap(mm); err != nil {
			t.Fatal(err)
		}
		mm.Close()
	}()
	if after := gocv.MatProfile.Count(); after != before {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		t.Errorf("live Mats: %d before, %d after\n%s", before, after, b.String())
	}
}
