// Package pooled holds the densities over one pooled feature vector per
// image (DifferNet's flow and the Gaussian baseline it has to beat),
// registered by name as local's patch densities are: one file each, with a
// Register call in its init. Vectors arrive standardised (pipeline and
// calibration standardise with the good parts' statistics).
package pooled

import (
	"context"
	"encoding/json"

	"github.com/inspectd/inspectd/model"
)

// Density scores pooled vectors: higher means less like the good parts.
type Density interface {
	// Validate names the first setting the density cannot be fitted with.
	Validate(s Settings) error
	// Fit learns from n good rows of dim values. Calibration calls it once
	// per fold on the other folds' images (out-of-sample scores for the
	// threshold) and once on all of them.
	Fit(ctx context.Context, x []float32, n, dim int, s Settings) (Stats, error)
	// Score returns one score per row of the n x dim batch.
	Score(x []float32, n int) []float32
	// ScoreGrad also returns d score_i / d x_i (for heatmaps).
	ScoreGrad(x []float32, n int) (scores, dx []float32)
	// Config is the method's stored configuration (Manifest.MethodConfig).
	Config() json.RawMessage
	// Tensors are what the model file keeps; Load restores them and the
	// configuration from a model file.
	Tensors() []model.Tensor
	Load(m *model.Model, dim int) error
}

// FlowShape sizes a flow; its width comes from the features.
type FlowShape struct {
	Blocks int     `json:"blocks"`
	Hidden int     `json:"hidden"`
	Depth  int     `json:"depth"`
	Clamp  float64 `json:"clamp"`
}

// Settings are how calibration fits a pooled density.
type Settings struct {
	Seed  int64
	Views int // consecutive rows per good image: images are held out whole
	// Progress reports training epochs; nil: quiet.
	Progress func(done, total int)
	Training
}

// Training holds the knobs of the trained pooled densities (calibration's
// flags set them); a density reads those it has a use for, the Gaussian
// none.
type Training struct {
	Flow        FlowShape
	MaxEpochs   int
	Batch       int
	Patience    int
	LR          float64
	WeightDecay float64
	Whiten      bool    // flow on vectors whitened by a shrunk Gaussian (see FlowMethod)
	Noise       float64 // std of Gaussian noise added to training vectors, fresh each epoch
	ValFraction float64 // share of images held out to pick the epoch count
	Refit       bool    // retrain on all images for the picked epoch count
}

// Stats is what Fit reports about training (zero for a closed-form fit).
type Stats struct {
	Epochs    int
	FinalLoss float64
}
