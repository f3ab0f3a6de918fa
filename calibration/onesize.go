package calibration

import (
	"fmt"
	"log/slog"
	"math"
	"slices"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/imageops"
)

// MaxAspectSpread is how far (as a ratio) a good part's aspect ratio may lie
// from the reference part's and still be resized to its size: crops of one
// product by hand or by a part detector differ by a few percent; a part a
// quarter wider or more is another view or another product.
const MaxAspectSpread = 1.25

// oneSize brings good parts whose aspect-true backbone inputs differ to one
// size, as patch methods need one grid for all of them: each is resized to
// the pixel size of the reference part, the one whose aspect ratio is the
// median. Parts already of the reference's input size are passed as they
// are; release closes only the copies made. Scoring keeps every part's own
// aspect: the bank does not depend on the grid, and score maps are compared
// on one square of relative positions.
func oneSize(imgs []gocv.Mat, files []string, fc features.Config, scale int) (out []gocv.Mat, release func(), err error) {
	release = func() {}
	if len(imgs) == 0 {
		return imgs, release, nil
	}
	type size struct{ w, h int }
	in := make([]size, len(imgs))
	same := true
	for i, m := range imgs {
		in[i].w, in[i].h = fc.InputSize(m.Cols(), m.Rows(), scale)
		same = same && in[i] == in[0]
	}
	if same {
		return imgs, release, nil
	}
	aspect := func(i int) float64 { return float64(imgs[i].Cols()) / float64(imgs[i].Rows()) }
	order := make([]int, len(imgs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch x, y := aspect(a), aspect(b); {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	ref := order[len(order)/2]
	for i := range imgs {
		if r := aspect(i) / aspect(ref); math.Max(r, 1/r) > MaxAspectSpread {
			return nil, nil, fmt.Errorf("good parts of different shapes: %s is %dx%d, %s (the median shape) %dx%d; aspect ratios more than %.0f%% apart are not one product view",
				files[i], imgs[i].Cols(), imgs[i].Rows(), files[ref], imgs[ref].Cols(), imgs[ref].Rows(), 100*(MaxAspectSpread-1))
		}
	}
	out = slices.Clone(imgs)
	var made []gocv.Mat
	for i := range imgs {
		if in[i] != in[ref] {
			out[i] = imageops.Resize(imgs[i], imgs[ref].Cols(), imgs[ref].Rows())
			made = append(made, out[i])
		}
	}
	slog.Info("good parts resized to one size: their backbone inputs differed",
		"resized", len(made), "parts", len(imgs), "size", fmt.Sprintf("%dx%d", imgs[ref].Cols(), imgs[ref].Rows()),
		"input", fmt.Sprintf("%dx%d", in[ref].w, in[ref].h))
	return out, func() { imageops.CloseAll(made) }, nil
}
