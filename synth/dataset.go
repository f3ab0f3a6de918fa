package synth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/imageops"
)

// WriteDataset writes a synthetic category in MVTec AD layout under dir:
//
//	train/good/000.png ...            nTrain good parts
//	test/good/000.png ...             nTestGood other good parts
//	test/<kind>/000.png ...           nTestDefectPerKind parts per Kind
//	ground_truth/<kind>/000_mask.png  their masks (0/255)
//
// Images are size x size. The output depends only on the arguments: every
// image has its own seed derived from seed, so no two images share a part.
// Existing files of the same names are replaced atomically.
func WriteDataset(dir string, nTrain, nTestGood, nTestDefectPerKind int, size int, seed int64) error {
	if nTrain < 0 || nTestGood < 0 || nTestDefectPerKind < 0 {
		return fmt.Errorf("synth: write dataset %s: negative image count", dir)
	}
	if size < MinSize {
		return fmt.Errorf("synth: write dataset %s: size %d below the minimum %d", dir, size, MinSize)
	}
	goods := []struct {
		sub   string
		n     int
		group string
	}{
		{filepath.Join("train", "good"), nTrain, "train"},
		{filepath.Join("test", "good"), nTestGood, "test/good"},
	}
	for _, g := range goods {
		for i := range g.n {
			m := Good(deriveSeed(seed, g.group, i), size)
			err := writePNG(filepath.Join(dir, g.sub), fmt.Sprintf("%03d.png", i), m)
			m.Close()
			if err != nil {
				return fmt.Errorf("synth: write dataset: %w", err)
			}
		}
	}
	for _, k := range Kinds {
		for i := range nTestDefectPerKind {
			if err := writeDefect(dir, k, i, size, seed); err != nil {
				return fmt.Errorf("synth: write dataset: %w", err)
			}
		}
	}
	return nil
}

func writeDefect(dir string, k Kind, i, size int, seed int64) error {
	group := "test/" + string(k)
	good := Good(deriveSeed(seed, group, i), size)
	defer good.Close()
	img, mask, err := Defect(good, k, deriveSeed(seed, group+"/defect", i))
	if err != nil {
		return err
	}
	defer img.Close()
	defer mask.Close()
	name := fmt.Sprintf("%03d", i)
	return errors.Join(
		writePNG(filepath.Join(dir, "test", string(k)), name+".png", img),
		writePNG(filepath.Join(dir, "ground_truth", string(k)), name+"_mask.png", mask))
}

func writePNG(dir, name string, m gocv.Mat) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := imageops.EncodePNG(m)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return imageops.WriteFileAtomic(filepath.Join(dir, name), data)
}
