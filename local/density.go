package local

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	reg "github.com/inspectd/inspectd/internal/registry"
	"github.com/inspectd/inspectd/model"
)

// Density scores patch vectors: higher means less like the good parts'
// patches. Each implementation is one file registered by name.
type Density interface {
	// Fit learns from n rows of dim values; owner[i] is the good image row
	// i came from, so Score can leave one image out.
	Fit(ctx context.Context, x []float32, n, dim int, owner []int32) error
	// Score returns one score per row. With exclude >= 0 the rows of that
	// good image are left out of the reference (leave-one-out scores for
	// the threshold, from the model itself rather than refits); only valid
	// on a density fitted in this process.
	Score(ctx context.Context, x []float32, n int, exclude int32) ([]float32, error)
	// Config is the method's stored configuration.
	Config() json.RawMessage
	// Tensors are what the model file keeps; Load restores them.
	Tensors() []model.Tensor
	Load(m *model.Model, dim int) error
}

// Extender is a density that can take confirmed-good parts after
// calibration without refitting (operator feedback on the line). Extend
// adds what of the n rows is new to the reference and says how many rows
// that was; on error nothing changed.
type Extender interface {
	Extend(ctx context.Context, x []float32, n int) (int, error)
}

// Factory makes an unfitted density from its stored configuration (nil:
// the defaults).
type Factory func(cfg json.RawMessage) (Density, error)

// decodeConfig reads a stored configuration over the defaults already in
// cfg and checks its bounds, so that a hostile model file is refused before
// anything is built from it.
func decodeConfig[C interface{ validate() error }](raw json.RawMessage, what string, cfg *C) error {
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, cfg); err != nil {
			return fmt.Errorf("%s configuration: %w", what, err)
		}
	}
	return (*cfg).validate()
}

// The patch densities share one name space with the pooled ones (a model
// file names its method only).
var registry = reg.New[Factory]("patch")

// Register makes a density available by name; names are model.Method values.
func Register(name string, f Factory) { registry.Register(name, f) }

// New makes the named density.
func New(name string, cfg json.RawMessage) (Density, error) {
	f, err := registry.Get(name)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	return f(cfg)
}

// Is says whether name is a registered patch density.
func Is(name string) bool { return registry.Has(name) }

// Names lists the registered densities.
func Names() []string { return registry.Names() }

// exactTensor returns the named tensor if it has exactly the shape and
// only finite values: what a density with fixed tensor shapes checks a
// model file against before using it.
func exactTensor(m *model.Model, name string, shape []int) (model.Tensor, error) {
	t, err := m.Tensor(name)
	if err != nil {
		return t, err
	}
	size := 1
	for _, s := range shape {
		size *= s
	}
	if !slices.Equal(t.Shape, shape) || len(t.Data) != size {
		return t, fmt.Errorf("model %s: tensor %s has shape %v (%d values); want %v", m.Manifest.ID, name, t.Shape, len(t.Data), shape)
	}
	if i := firstBad(t.Data); i >= 0 {
		return t, fmt.Errorf("model %s: tensor %s holds a non-finite value at %d", m.Manifest.ID, name, i)
	}
	return t, nil
}
