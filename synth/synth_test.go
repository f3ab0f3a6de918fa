package synth

import (
	"bytes"
	"image"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/imageops"
)

func pixels(t testing.TB, m gocv.Mat) []byte {
	t.Helper()
	b, err := m.DataPtrUint8()
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), b...)
}

func grayAt(px []byte, i int) float64 {
	return 0.114*float64(px[3*i]) + 0.587*float64(px[3*i+1]) + 0.299*float64(px[3*i+2])
}

func TestGoodDeterministicAndVaried(t *testing.T) {
	size := 160
	a := Good(7, size)
	defer a.Close()
	b := Good(7, size)
	defer b.Close()
	c := Good(8, size)
	defer c.Close()
	if a.Rows() != size || a.Cols() != size || a.Type() != gocv.MatTypeCV8UC3 {
		t.Fatalf("Good: %dx%d type %v, want %dx%d 8UC3", a.Cols(), a.Rows(), a.Type(), size, size)
	}
	pa, pb, pc := pixels(t, a), pixels(t, b), pixels(t, c)
	if !bytes.Equal(pa, pb) {
		t.Error("same seed gave different parts")
	}
	var diff float64
	for i := range pa {
		diff += math.Abs(float64(pa[i]) - float64(pc[i]))
	}
	if diff /= float64(len(pa)); diff < 3 {
		t.Errorf("seeds 7 and 8 differ by %.2f grey levels on average: no variation", diff)
	}
	// A bright part in the middle, a dark belt at the corners.
	n := size * size
	centreRing := (size/2-int(0.5*partRadius*float64(size)))*size + size/2 // on the face, above the bore
	if g := grayAt(pa, centreRing); g < 110 {
		t.Errorf("face grey %.0f, want a bright part", g)
	}
	for _, i := range []int{0, size - 1, n - size, n - 1} {
		if g := grayAt(pa, i); g > 80 {
			t.Errorf("corner grey %.0f, want a dark belt", g)
		}
	}
}

func TestGoodPanicsOnTinySize(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Good(…, 10) did not panic")
		}
	}()
	Good(1, 10)
}

func TestDefect(t *testing.T) {
	for _, size := range []int{224, 448} {
		for _, k := range Kinds {
			for seed := range int64(3) {
				good := Good(100+seed, size)
				img, mask, err := Defect(good, k, seed)
				if err != nil {
					good.Close()
					t.Fatalf("%s size %d seed %d: %v", k, size, seed, err)
				}
				checkDefect(t, good, img, mask, k, size, seed)
				again, mask2, err := Defect(good, k, seed)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(pixels(t, img), pixels(t, again)) || !bytes.Equal(pixels(t, mask), pixels(t, mask2)) {
					t.Errorf("%s seed %d: not deterministic", k, seed)
				}
				for _, m := range []gocv.Mat{good, img, mask, again, mask2} {
					m.Close()
				}
			}
		}
	}
}

func checkDefect(t *testing.T, good, img, mask gocv.Mat, k Kind, size int, seed int64) {
	t.Helper()
	if img.Type() != gocv.MatTypeCV8UC3 || mask.Type() != gocv.MatTypeCV8U ||
		img.Rows() != size || mask.Rows() != size || mask.Cols() != size {
		t.Fatalf("%s: image %v %dx%d, mask %v %dx%d", k, img.Type(), img.Cols(), img.Rows(), mask.Type(), mask.Cols(), mask.Rows())
	}
	pg, pi, pm := pixels(t, good), pixels(t, img), pixels(t, mask)

	// Part area: bright pixels of the good image plus what lies inside its
	// outline is close to pi R^2 with R from the drawing constants.
	partArea := math.Pi * math.Pow(partRadius*float64(size), 2)
	var n int
	var change float64
	for i, v := range pm {
		switch v {
		case 0:
			continue
		case 255:
		default:
			t.Fatalf("%s: mask value %d, want 0 or 255", k, v)
		}
		n++
		// Inside the part: on metal in the good image. The belt and the
		// holes stay below 65, the metal above 90; anti-aliased rim pixels
		// lie between.
		if g := grayAt(pg, i); g < 70 {
			t.Fatalf("%s size %d seed %d: mask pixel %d on grey %.0f: not on the part", k, size, seed, i, g)
		}
		change += math.Abs(grayAt(pi, i) - grayAt(pg, i))
	}
	frac := float64(n) / partArea
	if frac < 0.001 || frac > 0.05 {
		t.Errorf("%s size %d seed %d: mask covers %.2f%% of the part, want 0.1-5%%", k, size, seed, 100*frac)
	}
	if n > 0 {
		if change /= float64(n); change < 30 {
			t.Errorf("%s size %d seed %d: mean change %.1f grey levels under the mask: not clearly visible", k, size, seed, change)
		}
	}
	// Outside the mask (grown by 3 px for anti-aliased edges) nothing changes.
	grown := gocv.NewMat()
	defer grown.Close()
	kernel := gocv.GetStructuringElement(gocv.MorphRect, imagePt(7, 7))
	defer kernel.Close()
	gocv.Dilate(mask, &grown, kernel)
	pgr := pixels(t, grown)
	for i, v := range pgr {
		if v == 0 && !bytes.Equal(pi[3*i:3*i+3], pg[3*i:3*i+3]) {
			t.Fatalf("%s: pixel %d away from the mask changed", k, i)
		}
	}
}

func TestDefectErrors(t *testing.T) {
	good := Good(1, 128)
	defer good.Close()
	belt := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(40, 40, 40, 0), 128, 128, gocv.MatTypeCV8UC3)
	defer belt.Close()
	gray := gocv.NewMatWithSize(128, 128, gocv.MatTypeCV8U)
	defer gray.Close()
	tests := []struct {
		name string
		img  gocv.Mat
		kind Kind
	}{
		{"unknown kind", good, "dent"},
		{"no part", belt, Stain},
		{"gray image", gray, Stain},
	}
	for _, tc := range tests {
		img, mask, err := Defect(tc.img, tc.kind, 1)
		if err == nil {
			img.Close()
			mask.Close()
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestWriteDataset(t *testing.T) {
	const size = 128
	dirA, dirB, dirC := t.TempDir(), t.TempDir(), t.TempDir()
	if err := WriteDataset(dirA, 3, 2, 2, size, 42); err != nil {
		t.Fatal(err)
	}
	if err := WriteDataset(dirB, 3, 2, 2, size, 42); err != nil {
		t.Fatal(err)
	}
	if err := WriteDataset(dirC, 3, 2, 2, size, 43); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"train/good/000.png", "train/good/001.png", "train/good/002.png",
		"test/good/000.png", "test/good/001.png",
	}
	for _, k := range Kinds {
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
		if m.Rows() != size || m.Cols() != size {
			t.Errorf("%s: %dx%d, want %dx%d", f, m.Cols(), m.Rows(), size, size)
		}
		m.Close()
	}
	if differ < len(want)/2 {
		t.Errorf("only %d of %d files change with the seed", differ, len(want))
	}
	// No two images of the set are the same part.
	seen := map[string]string{}
	for _, f := range want {
		if filepath.Base(filepath.Dir(f)) == "ground_truth" || bytes.Contains([]byte(f), []byte("_mask")) {
			continue
		}
		a, _ := os.ReadFile(filepath.Join(dirA, f))
		if prev, ok := seen[string(a)]; ok {
			t.Errorf("%s and %s are identical", f, prev)
		}
		seen[string(a)] = f
	}
	if err := WriteDataset(dirA, 1, 1, 1, 10, 1); err == nil {
		t.Error("size 10 accepted")
	}
}

func TestPartKind(t *testing.T) {
	tests := []struct {
		i, every  int
		kind      Kind
		defective bool
	}{
		{0, 3, "", false}, {2, 3, Scratch, true}, {5, 3, Stain, true}, {8, 3, Crack, true},
		{11, 3, Hole, true}, {14, 3, Scratch, true}, {4, 0, "", false}, {0, 1, Scratch, true},
	}
	for _, tc := range tests {
		k, d := PartKind(tc.i, tc.every)
		if k != tc.kind || d != tc.defective {
			t.Errorf("PartKind(%d, %d) = %q, %v; want %q, %v", tc.i, tc.every, k, d, tc.kind, tc.defective)
		}
	}
}

func TestWriteVideo(t *testing.T) {
	const frames, size, every = 12, 128, 3
	const seed = 5
	path := filepath.Join(t.TempDir(), "line.avi")
	if err := WriteVideo(path, frames, 10, size, every, seed); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("%d files in the directory, want only the video", len(entries))
	}
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	if n := vc.Get(gocv.VideoCaptureFrameCount); int(n) != frames {
		t.Errorf("frame count property %v, want %d", n, frames)
	}
	frame := gocv.NewMat()
	defer frame.Close()
	read := 0
	for vc.Read(&frame) && !frame.Empty() {
		if frame.Rows() != size || frame.Cols() != size {
			t.Fatalf("frame %d is %dx%d", read, frame.Cols(), frame.Rows())
		}
		// Each frame is the part PartKind describes, up to JPEG loss.
		want, err := videoFrame(read, size, every, seed)
		if err != nil {
			t.Fatal(err)
		}
		good := Good(deriveSeed(seed, "video", read), size)
		dWant, dGood := meanAbsDiff(t, frame, want), meanAbsDiff(t, want, good)
		if dWant > 6 {
			t.Errorf("frame %d differs from the part by %.1f grey levels", read, dWant)
		}
		if _, defective := PartKind(read, every); defective != (dGood > 0) {
			t.Errorf("frame %d: defective %v but differs from its good part by %.3f", read, defective, dGood)
		}
		want.Close()
		good.Close()
		read++
	}
	if read != frames {
		t.Errorf("read %d frames, want %d", read, frames)
	}
	for _, bad := range []struct {
		frames int
		fps    float64
		size   int
	}{{0, 10, 128}, {5, 0, 128}, {5, 10, 8}} {
		if err := WriteVideo(filepath.Join(t.TempDir(), "x.avi"), bad.frames, bad.fps, bad.size, 2, 1); err == nil {
			t.Errorf("WriteVideo(frames %d, fps %v, size %d) accepted", bad.frames, bad.fps, bad.size)
		}
	}
}

func meanAbsDiff(t *testing.T, a, b gocv.Mat) float64 {
	pa, pb := pixels(t, a), pixels(t, b)
	var s float64
	for i := range pa {
		s += math.Abs(float64(pa[i]) - float64(pb[i]))
	}
	return s / float64(len(pa))
}

func imagePt(x, y int) image.Point { return image.Pt(x, y) }

func BenchmarkGood448(b *testing.B) {
	for i := 0; b.Loop(); i++ {
		m := Good(int64(i), 448)
		m.Close()
	}
}
