package calibration

import (
	"context"
	"fmt"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/pipeline"
)

// minPatchMemory is the least Config.PatchMemory accepted, far below what
// a real backbone's patches need (a few MB per part): the bound exists so
// that memory stays bounded, not to be tuned down.
const minPatchMemory = 64 << 10

// goodPatches are the untransformed patch rows of the good images. They are
// kept while they fit in half of Config.PatchMemory and extracted again
// when needed after that, so a calibration on hundreds of parts holds a
// bounded amount of them rather than all.
type goodPatches struct {
	l         *pipeline.Local
	ex        *features.Extractor
	imgs      []gocv.Mat
	files     []string
	kept      [][]float32 // nil: extract again
	h, w, dim int
}

// extractGood extracts the good images' patches while they fit; the first
// that does not ends it, as every later part is one size too (checked when
// it is extracted on demand), so no part is run through the backbone only
// to be dropped.
func extractGood(ctx context.Context, l *pipeline.Local, ex *features.Extractor, imgs []gocv.Mat, files []string, memory int64, prog Progress) (*goodPatches, error) {
	g := &goodPatches{l: l, ex: ex, imgs: imgs, files: files, kept: make([][]float32, len(imgs))}
	var held int64
	for i := range imgs {
		r, err := g.extract(ctx, i)
		if err != nil {
			return nil, err
		}
		b := 4 * int64(len(r))
		if held+b > memory/2 {
			break
		}
		g.kept[i] = r
		held += b
		if prog != nil {
			prog("features", i+1, len(imgs))
		}
	}
	return g, nil
}

// of returns image i's patch rows.
func (g *goodPatches) of(ctx context.Context, i int) ([]float32, error) {
	if g.kept[i] != nil {
		return g.kept[i], nil
	}
	return g.extract(ctx, i)
}

func (g *goodPatches) extract(ctx context.Context, i int) ([]float32, error) {
	r, h, w, dim, err := g.l.Patches(ctx, g.ex, []gocv.Mat{g.imgs[i]})
	if err != nil {
		return nil, fmt.Errorf("patches of %s: %w", g.files[i], err)
	}
	if g.h == 0 {
		g.h, g.w, g.dim = h, w, dim
	} else if h != g.h || w != g.w || dim != g.dim {
		return nil, fmt.Errorf("patches of %s: a %dx%d grid of %d values, the first part's is %dx%d of %d (good parts must be one size)",
			g.files[i], w, h, dim, g.w, g.h, g.dim)
	}
	return r[0], nil
}

// poolShare is the share of each part's patches that goes into the rows
// the bank is chosen from: all of them while rows of perPart patches from
// every part fit in half of memory.
func poolShare(parts, perPart, dim int, memory int64) float64 {
	total := float64(parts) * float64(perPart) * float64(dim) * 4
	return min(1, float64(memory/2)/total)
}
