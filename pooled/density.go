// Package pooled holds the densities over one pooled feature vector per
// image (DifferNet's flow and the Gaussian baseline it has to beat),
// registered by name as local's patch densities are: one file each, with a
// Register call in its init. Vectors arrive standardised (pipeline and
// calibration standardise with the good parts' statistics).
package pooled

import (
	"context"
	"encoding/json"
	"fmt"

	reg "github.com/inspectd/inspectd/internal/registry"
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

// Settings are how calibration fits a pooled density; a density reads the
// fields it has a use for (the Gaussian none).
type Settings struct {
	Seed  int64
	Views int // consecutive rows per good image: images are held out whole
	// Progress reports training epochs; nil: quiet.
	Progress func(done, total int)

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

// Factory makes an unfitted density.
type Factory func() Density

// Pooled and patch densities share one name space (a model file names its
// method only).
var registry = reg.New[Factory]("pooled")

// Register makes a density available by name; names are model.Method values.
func Register(name string, f Factory) { registry.Register(name, f) }

// New makes the named density, unfitted.
func New(name string) (Density, error) {
	f, err := registry.Get(name)
	if err != nil {
		return nil, fmt.Errorf("pooled: %w", err)
	}
	return f(), nil
}

// Is says whether name is a registered pooled density.
func Is(name string) bool { return registry.Has(name) }

// Names lists the registered densities.
func Names() []string { return registry.Names() }

// Load rebuilds the density a model file names, for vectors of dim.
func Load(m *model.Model, dim int) (Density, error) {
	d, err := New(string(m.Manifest.Method))
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Manifest.ID, err)
	}
	if err := d.Load(m, dim); err != nil {
		return nil, err
	}
	return d, nil
}
