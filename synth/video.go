package synth

import (
	"fmt"
	"os"
	"path/filepath"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/imageops"
)

// PartKind says what WriteVideo puts in frame i (counting from 0): parts
// number defectEvery-1, 2*defectEvery-1, ... are defective, cycling through
// Kinds in order; defectEvery <= 0 means no defects.
func PartKind(i, defectEvery int) (kind Kind, defective bool) {
	if defectEvery <= 0 || (i+1)%defectEvery != 0 {
		return "", false
	}
	return Kinds[((i+1)/defectEvery-1)%len(Kinds)], true
}

// WriteVideo writes an MJPG AVI of parts on the line, one part per frame,
// centred as a camera triggered by the line's part sensor would see it, so
// that every frame is one inspection (frame i is part i; see PartKind for
// which are defective). frames frames of size x size at fps. Written to a
// temporary file and renamed into place; path should end in .avi.
func WriteVideo(path string, frames int, fps float64, size int, defectEvery int, seed int64) error {
	switch {
	case frames <= 0:
		return fmt.Errorf("synth: write video %s: frames %d must be > 0", path, frames)
	case fps <= 0:
		return fmt.Errorf("synth: write video %s: fps %v must be > 0", path, fps)
	case size < MinSize:
		return fmt.Errorf("synth: write video %s: size %d below the minimum %d", path, size, MinSize)
	}
	// The extension picks the container, so the temporary name keeps it.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*"+filepath.Ext(path))
	if err != nil {
		return fmt.Errorf("synth: write video %s: %w", path, err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmpName)
		}
	}()

	vw, err := gocv.VideoWriterFile(tmpName, "MJPG", fps, size, size, true)
	if err != nil {
		return fmt.Errorf("synth: write video %s: %w", path, err)
	}
	if !vw.IsOpened() {
		vw.Close()
		return fmt.Errorf("synth: write video %s: OpenCV cannot open an MJPG writer", path)
	}
	for i := range frames {
		frame, err := videoFrame(i, size, defectEvery, seed)
		if err == nil {
			err = vw.Write(frame)
			frame.Close()
		}
		if err != nil {
			vw.Close()
			return fmt.Errorf("synth: write video %s: frame %d: %w", path, i, err)
		}
	}
	if err := vw.Close(); err != nil {
		return fmt.Errorf("synth: write video %s: %w", path, err)
	}
	if err := imageops.SyncFileInto(tmpName, path); err != nil {
		return fmt.Errorf("synth: write video: %w", err)
	}
	ok = true
	return nil
}

func videoFrame(i, size, defectEvery int, seed int64) (gocv.Mat, error) {
	good := Good(deriveSeed(seed, "video", i), size)
	kind, defective := PartKind(i, defectEvery)
	if !defective {
		return good, nil
	}
	defer good.Close()
	img, mask, err := Defect(good, kind, deriveSeed(seed, "video/defect", i))
	if err != nil {
		return gocv.Mat{}, err
	}
	mask.Close()
	return img, nil
}
