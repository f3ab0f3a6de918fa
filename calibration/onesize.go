package calibration

import (
	"cmp"
	"fmt"
	"log/slog"
	"math"
	"slices"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/model"
)

// MaxAspectSpread is how far (as a ratio) a good part's aspect ratio may lie
// from the median part's before calibration warns about it. It is a warning,
// not a refusal: a product whose parts vary in shape (tiles) varies that much.
const MaxAspectSpread = model.AspectTolerance

// oneSize brings good parts whose aspect-true backbone inputs differ to one
// size, as patch methods need one grid for all of them: each is resized to
// the pixel size of the reference part, the one whose aspect ratio is the
// median (with a warning when one lies more than MaxAspectSpread from it).
// Parts already of the reference's input size are passed as they are;
// release closes only the copies made; odd names the part warned about. Scoring keeps every part's own
// aspect: the bank does not depend on the grid, and score maps are compared
// on one square of relative positions.
func oneSize(imgs []gocv.Mat, files []string, fc features.Config, scale int) (out []gocv.Mat, release func(), odd string) {
	release = func() {}
	if len(imgs) == 0 {
		return imgs, release, ""
	}
	type size struct{ w, h int }
	in := make([]size, len(imgs))
	same := true
	for i, m := range imgs {
		in[i].w, in[i].h = fc.InputSize(m.Cols(), m.Rows(), scale)
		same = same && in[i] == in[0]
	}
	if same {
		return imgs, release, ""
	}
	aspect := func(i int) float64 { return aspectOf(imgs[i]) }
	order := make([]int, len(imgs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(aspect(a), aspect(b)) })
	ref := order[len(order)/2]
	far, spread := ref, 1.0
	for i := range imgs {
		if r := aspect(i) / aspect(ref); math.Max(r, 1/r) > spread {
			far, spread = i, math.Max(r, 1/r)
		}
	}
	if spread > MaxAspectSpread {
		odd = files[far]
		slog.Warn("good parts differ in shape: they are resized to the median shape's size; check they are one product view",
			"part", files[far], "size", fmt.Sprintf("%dx%d", imgs[far].Cols(), imgs[far].Rows()),
			"median_shape", files[ref], "median_size", fmt.Sprintf("%dx%d", imgs[ref].Cols(), imgs[ref].Rows()),
			"aspect_ratio_apart", math.Round(100*spread)/100)
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
	return out, func() { imageops.CloseAll(made) }, odd
}

// partShape is the range of the good parts' aspect ratios the manifest
// records, against which parts on the line are checked.
func partShape(imgs []gocv.Mat) *model.PartShape {
	if len(imgs) == 0 {
		return nil
	}
	a := make([]float64, len(imgs))
	for i, m := range imgs {
		a[i] = aspectOf(m)
	}
	slices.Sort(a)
	return &model.PartShape{AspectMin: a[0], AspectMedian: a[len(a)/2], AspectMax: a[len(a)-1]}
}

func aspectOf(m gocv.Mat) float64 { return float64(m.Cols()) / float64(max(m.Rows(), 1)) }
