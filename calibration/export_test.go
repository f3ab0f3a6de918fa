package calibration

import (
	"context"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/pipeline"
)

var PoolShare = poolShare

// GoodPatches exposes extractGood: how many images' patches were kept, and
// every image's patch rows as calibration reads them.
func GoodPatches(ctx context.Context, l *pipeline.Local, ex *features.Extractor, imgs []gocv.Mat, files []string, memory int64) (kept int, rows [][]float32, err error) {
	g, err := extractGood(ctx, l, ex, imgs, files, memory, nil)
	if err != nil {
		return 0, nil, err
	}
	for i := range imgs {
		if g.kept[i] != nil {
			kept++
		}
		r, err := g.of(ctx, i)
		if err != nil {
			return 0, nil, err
		}
		rows = append(rows, r)
	}
	return kept, rows, nil
}

var OneSize = oneSize
