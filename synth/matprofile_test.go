//go:build matprofile

package synth

import (
	"bytes"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"
)

// TestNoLeakedMats runs the generators, including error paths, and checks
// that the number of live Mats is unchanged afterwards.
func TestNoLeakedMats(t *testing.T) {
	before := gocv.MatProfile.Count()
	dir := t.TempDir()
	good := Good(1, 128)
	for _, k := range append(Kinds, "unknown") {
		if img, mask, err := Defect(good, k, 2); err == nil {
			img.Close()
			mask.Close()
		}
	}
	real := realLike(t, 96, 80, false, 1)
	for _, k := range append(SmallKinds, "unknown") {
		if img, mask, err := DefectOnReal(real, k, 2); err == nil {
			img.Close()
			mask.Close()
		}
	}
	real.Close()
	good.Close()
	files := writeGoods(t, dir, 2+len(SmallKinds))
	if err := WriteDatasetOnReal(filepath.Join(dir, "onreal"), files, 1, 1, 1, 3); err != nil {
		t.Fatal(err)
	}
	if err := WriteDataset(filepath.Join(dir, "set"), 1, 1, 1, 128, 3); err != nil {
		t.Fatal(err)
	}
	if err := WriteVideo(filepath.Join(dir, "v.avi"), 4, 5, 128, 2, 4); err != nil {
		t.Fatal(err)
	}
	if after := gocv.MatProfile.Count(); after != before {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		t.Errorf("live Mats: %d before, %d after\n%s", before, after, b.String())
	}
}
