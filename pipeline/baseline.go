package pipeline

import (
	"context"
	"fmt"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/model"
)

// The heatmap compares each position of a part's backbone maps with the good
// parts' mean at that position. A single mean per channel (the pooled
// feature mean) makes a good part's own structure — its rim, a border, a
// printed mark — look like a deviation wherever it differs from the part's
// average, and a defect then has to outshine it; per-position means cancel
// what every good part has in the same place (parts sit in a fixed pose in
// the ROI on a line). They are stored for the untransformed part; a rotated
// view's contributions are compared after being rotated back.

// BaselineTensor names the good parts' mean map of one scale and tap.
func BaselineTensor(scale, tap int) string { return fmt.Sprintf("heat.mean.s%d.t%d", scale, tap) }

// Baselines averages the backbone maps of the good parts (already cropped to
// the ROI), one C x H x W tensor per scale and tap.
func Baselines(ctx context.Context, ex *features.Extractor, imgs []gocv.Mat) ([]model.Tensor, error) {
	var sums []model.Tensor
	for i, img := range imgs {
		_, maps, err := ex.Extract(ctx, []gocv.Mat{img}, true)
		if err != nil {
			return nil, fmt.Errorf("heatmap baseline, good image %d: %w", i, err)
		}
		if sums == nil {
			for _, m := range maps[0] {
				sums = append(sums, model.Tensor{Name: BaselineTensor(m.Scale, m.Tap), Shape: []int{m.C, m.H, m.W},
					Data: make([]float32, len(m.Data))})
			}
		}
		for k, m := range maps[0] {
			if len(m.Data) != len(sums[k].Data) {
				return nil, fmt.Errorf("heatmap baseline: good image %d gave a %dx%dx%d map, others %v", i, m.C, m.H, m.W, sums[k].Shape)
			}
			for p, v := range m.Data {
				sums[k].Data[p] += v
			}
		}
	}
	for _, s := range sums {
		for p := range s.Data {
			s.Data[p] /= float32(len(imgs))
		}
	}
	return sums, nil
}

// loadBaselines returns the model's mean maps indexed [scale][tap], or nil
// for a model made before they existed (the heatmap then falls back to the
// pooled mean).
func loadBaselines(m *model.Model, ex *features.Extractor) ([][][]float32, error) {
	feat := m.Manifest.Features
	out := make([][][]float32, len(feat.Scales))
	found := 0
	for s := range feat.Scales {
		out[s] = make([][]float32, len(feat.Taps))
		for t := range feat.Taps {
			tn, err := m.Tensor(BaselineTensor(s, t))
			if err != nil {
				continue
			}
			if len(tn.Shape) != 3 || tn.Shape[0] != ex.Channels(t) || tn.Shape[0]*tn.Shape[1]*tn.Shape[2] != len(tn.Data) {
				return nil, fmt.Errorf("model %s: heatmap baseline %s has shape %v; tap %s has %d channels",
					m.Manifest.ID, tn.Name, tn.Shape, feat.Taps[t], ex.Channels(t))
			}
			out[s][t] = tn.Data
			found++
		}
	}
	switch found {
	case 0:
		return nil, nil
	case len(feat.Scales) * len(feat.Taps):
		return out, nil
	}
	return nil, fmt.Errorf("model %s: heatmap baselines for %d of %d scales x taps", m.Manifest.ID, found, len(feat.Scales)*len(feat.Taps))
}
