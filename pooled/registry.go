package pooled

import (
	"fmt"

	reg "github.com/inspectd/inspectd/internal/registry"
	"github.com/inspectd/inspectd/model"
)

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
	f, err := registry.Get(string(m.Manifest.Method))
	if err != nil {
		return nil, fmt.Errorf("model %s: unknown method %q: %w", m.Manifest.ID, m.Manifest.Method, err)
	}
	d := f()
	if err := d.Load(m, dim); err != nil {
		return nil, err
	}
	return d, nil
}
