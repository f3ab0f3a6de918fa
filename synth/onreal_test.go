package synth

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/imageops"
)

// realLike returns a textured image standing in for a real photograph:
// smoothed noise with a dark stripe, grey (8UC1) or colour (8UC3).
func realLike(t testing.TB, w, h int, grey bool, seed int64) gocv.Mat {
	t.Helper()
	rng := newRNG(seed, 99)
	typ, ch := gocv.MatTypeCV8UC3, 3
	if grey {
		typ, ch = gocv.MatTypeCV8U, 1
	}
	m := gocv.NewMatWithSize(h, w, typ)
	b, err := m.DataPtrUint8()
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = uint8(110 + 40*rng.Float64() + float64(20*(i%ch)))
	}
	gocv.GaussianBlur(m, &m, image.Pt(5, 5), 0, 0, gocv.BorderReflect101)
	gocv.Rectangle(&m, image.Rect(0, h/3, w, h/3+h/20), color.RGBA{40, 40, 40, 0}, -1)
	return m
}

// asBGR returns a BGR copy of m, the form DefectOnReal's output is in.
func asBGR(m gocv.Mat) gocv.Mat {
	if m.Type() == gocv.MatTypeCV8UC3 {
		return m.Clone()
	}
	c := gocv.NewMat()
	gocv.CvtColor(m, &c, gocv.ColorGrayToBGR)
	return c
}

func maskCentroid(t *testing.T, mask gocv.Mat) (x, y float64) {
	t.Helper()
	b := pixels(t, mask)
	var n float64
	for i, v := range b {
		if v != 0 {
			x += float64(i % mask.Cols())
			y += float64(i / mask.Cols())
			n++
		}
	}
	return x / n, y / n
}

func TestDefectOnReal(t *testing.T) {
	const near = 6 // pixels: how far the soft edge may reach past the mask
	images := []struct {
		name string
		make func(t *testing.T) gocv.Mat
	}{
		{"synthetic part 160", func(t *testing.T) gocv.Mat { return Good(5, 160) }},
		{"grey 300", func(t *testing.T) gocv.Mat { return realLike(t, 300, 300, true, 1) }},
		{"colour 200x96", func(t *testing.T) gocv.Mat { return realLike(t, 200, 96, false, 2) }},
		{"grey 64", func(t *testing.T) gocv.Mat { return realLike(t, 64, 64, true, 3) }},
	}
	for _, im := range images {
		for _, k := range SmallKinds {
			t.Run(im.name+"/"+string(k), func(t *testing.T) {
				good := im.make(t)
				defer good.Close()
				h, w := good.Rows(), good.Cols()
				img, mask, err := DefectOnReal(good, k, 7)
				if err != nil {
					t.Fatal(err)
				}
				defer img.Close()
				defer mask.Close()
				if img.Type() != gocv.MatTypeCV8UC3 || img.Rows() != h || img.Cols() != w {
					t.Fatalf("image %dx%d type %v, want %dx%d 8UC3", img.Cols(), img.Rows(), img.Type(), w, h)
				}
				if mask.Type() != gocv.MatTypeCV8U || mask.Rows() != h || mask.Cols() != w {
					t.Fatalf("mask %dx%d type %v, want %dx%d 8UC1", mask.Cols(), mask.Rows(), mask.Type(), w, h)
				}
				n := gocv.CountNonZero(mask)
				if frac := float64(n) / float64(h*w); n == 0 || frac >= 0.01 {
					t.Errorf("mask covers %d pixels (%.2f%%), want > 0 and < 1%%", n, 100*frac)
				}
				margin := int(realMargin*float64(min(h, w))) - 1
				mb := pixels(t, mask)
				for i, v := range mb {
					x, y := i%w, i/w
					if v != 0 && v != 255 {
						t.Fatalf("mask value %d, want 0 or 255", v)
					}
					if v != 0 && (x < margin || y < margin || x >= w-margin || y >= h-margin) {
						t.Fatalf("mask pixel (%d,%d) within %d px of the border", x, y, margin)
					}
				}

				// Changed pixels lie near the mask; the mask itself shows a visible change.
				around := gocv.NewMat()
				defer around.Close()
				kernel := gocv.GetStructuringElement(gocv.MorphRect, image.Pt(2*near+1, 2*near+1))
				defer kernel.Close()
				gocv.Dilate(mask, &around, kernel)
				ref := asBGR(good)
				defer ref.Close()
				pg, pi, pa := pixels(t, ref), pixels(t, img), pixels(t, around)
				var maxIn float64
				for i := range h * w {
					var d float64
					for c := range 3 {
						d = max(d, math.Abs(float64(pg[3*i+c])-float64(pi[3*i+c])))
					}
					if d > 0 && pa[i] == 0 {
						t.Fatalf("pixel (%d,%d) changed by %.0f more than %d px from the mask", i%w, i/w, d, near)
					}
					if mb[i] != 0 {
						maxIn = max(maxIn, d)
					}
				}
				if maxIn < 12 {
					t.Errorf("largest change on the mask %.0f grey levels, want a visible defect (>= 12)", maxIn)
				}

				img2, mask2, err := DefectOnReal(good, k, 7)
				if err != nil {
					t.Fatal(err)
				}
				defer img2.Close()
				defer mask2.Close()
				if !bytes.Equal(pi, pixels(t, img2)) || !bytes.Equal(mb, pixels(t, mask2)) {
					t.Error("same seed gave different defects")
				}
			})
		}
	}
}

func TestDefectOnRealSeedsMove(t *testing.T) {
	good := realLike(t, 256, 256, true, 4)
	defer good.Close()
	for _, k := range SmallKinds {
		var centres [][2]float64
		for seed := int64(1); seed <= 4; seed++ {
			img, mask, err := DefectOnReal(good, k, seed)
			if err != nil {
				t.Fatal(err)
			}
			x, y := maskCentroid(t, mask)
			img.Close()
			mask.Close()
			for j, c := range centres {
				if math.Hypot(c[0]-x, c[1]-y) < 3 {
					t.Errorf("%s: seeds %d and %d put the defect at the same place (%.0f,%.0f)", k, j+1, seed, x, y)
				}
			}
			centres = append(centres, [2]float64{x, y})
		}
	}
}

func TestDefectOnRealErrors(t *testing.T) {
	ok := realLike(t, 100, 100, false, 1)
	defer ok.Close()
	narrow := realLike(t, 200, 63, true, 1)
	defer narrow.Close()
	float := gocv.NewMatWithSize(100, 100, gocv.MatTypeCV32F)
	defer float.Close()
	empty := gocv.NewMat()
	defer empty.Close()
	tests := []struct {
		name string
		img  gocv.Mat
		kind SmallKind
		want string
	}{
		{"unknown kind", ok, "hole", "unknown kind"},
		{"empty", empty, Spot, "empty image"},
		{"too small", narrow, Dent, "200x63 is too small (want at least 64x64)"},
		{"float", float, SmallScratch, "want an 8UC3 or 8UC1 image"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img, mask, err := DefectOnReal(tc.img, tc.kind, 1)
			if err == nil {
				img.Close()
				mask.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}

// writeGoods writes n good images, alternately colour PNG, grey PNG and JPEG.
func writeGoods(t testing.TB, dir string, n int) []string {
	t.Helper()
	var files []string
	for i := range n {
		m := realLike(t, 96, 80, i%3 == 1, int64(i))
		ext := []string{".png", ".png", ".jpg"}[i%3]
		f := filepath.Join(dir, fmt.Sprintf("good%02d%s", i, ext))
		ok := gocv.IMWrite(f, m)
		m.Close()
		if !ok {
			t.Fatalf("writing %s", f)
		}
		files = append(files, f)
	}
	return files
}

func TestWriteDatasetOnReal(t *testing.T) {
	const nTrain, nTestGood, nPerKind = 2, 2, 2
	need := nTrain + nTestGood + nPerKind*len(SmallKinds)
	files := writeGoods(t, t.TempDir(), need+1)
	dirA, dirB, dirC := t.TempDir(), t.TempDir(), t.TempDir()
	for _, r := range []struct {
		dir  string
		seed int64
	}{{dirA, 5}, {dirB, 5}, {dirC, 6}} {
		if err := WriteDatasetOnReal(r.dir, files, nTrain, nTestGood, nPerKind, r.seed); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"train/good/000.png", "train/good/001.png", "test/good/000.png", "test/good/001.png"}
	for _, k := range SmallKinds {
		for _, n := range []string{"000", "001"} {
			want = append(want, "test/"+string(k)+"/"+n+".png", "ground_truth/"+string(k)+"/"+n+"_mask.png")
		}
	}
	var got []string
	filepath.WalkDir(dirA, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dirA, p)
			got = append(got, filepath.ToSlash(rel))
		}
		return err
	})
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("files:\n%v\nwant:\n%v", got, want)
	}
	// Good PNGs are copied as they are (in a seeded shuffle, so train, good
	// test and defect images are exchangeable); the JPEG is re-encoded.
	inputs := map[string]bool{}
	for _, f := range files {
		if filepath.Ext(f) == ".png" {
			b, _ := os.ReadFile(f)
			inputs[string(b)] = true
		}
	}
	copies := 0
	for _, f := range []string{"train/good/000.png", "train/good/001.png", "test/good/000.png"} {
		a, _ := os.ReadFile(filepath.Join(dirA, f))
		if isPNG := bytes.HasPrefix(a, []byte("\x89PNG")); !isPNG {
			t.Errorf("%s is not a PNG", f)
		}
		if inputs[string(a)] {
			copies++
		}
	}
	if copies == 0 {
		t.Error("no good image is a byte copy of an input PNG")
	}
	differ := 0
	for _, f := range want {
		a, errA := os.ReadFile(filepath.Join(dirA, f))
		b, errB := os.ReadFile(filepath.Join(dirB, f))
		c, _ := os.ReadFile(filepath.Join(dirC, f))
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs between two runs with the same seed", f)
		}
		if !bytes.Equal(a, c) {
			differ++
		}
		m, err := imageops.Decode(a)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if m.Rows() != 80 || m.Cols() != 96 {
			t.Errorf("%s: %dx%d, want 96x80", f, m.Cols(), m.Rows())
		}
		m.Close()
	}
	if differ < nPerKind*len(SmallKinds)*2 {
		t.Errorf("%d files change with the seed, want at least every defective image and mask (%d)", differ, nPerKind*len(SmallKinds)*2)
	}

	err := WriteDatasetOnReal(t.TempDir(), files[:need-1], nTrain, nTestGood, nPerKind, 5)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d good images given, %d needed", need-1, need)) {
		t.Errorf("too few good images: error %v", err)
	}
	if err := WriteDatasetOnReal(t.TempDir(), files, -1, 0, 0, 5); err == nil {
		t.Error("negative count accepted")
	}
}
