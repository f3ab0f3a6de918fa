// Package registry keeps the densities by name. A model file names its
// method and nothing else, so every kind of density (over patch vectors, in
// local; over pooled vectors, in pooled) shares one name space; each kind
// keeps its own factories because each has its own interface.
package registry

import (
	"fmt"
	"sort"
	"sync"
)

var (
	mu    sync.Mutex
	kinds = map[string]string{} // every registered name -> its kind
)

// Registry holds the factories of one kind of density.
type Registry[F any] struct {
	kind string
	m    map[string]F
}

// New makes the registry of one kind ("patch", "pooled").
func New[F any](kind string) *Registry[F] {
	return &Registry[F]{kind: kind, m: map[string]F{}}
}

// Register adds a factory; a name already taken by any kind panics, since
// a model file could not say which density it meant.
func (r *Registry[F]) Register(name string, f F) {
	mu.Lock()
	defer mu.Unlock()
	if k, dup := kinds[name]; dup {
		panic(fmt.Sprintf("density %s registered twice (%s, then %s)", name, k, r.kind))
	}
	kinds[name] = r.kind
	r.m[name] = f
}

// Get returns the named factory, or an error naming the ones there are.
func (r *Registry[F]) Get(name string) (F, error) {
	mu.Lock()
	f, ok := r.m[name]
	mu.Unlock()
	if !ok {
		return f, fmt.Errorf("unknown %s density %q (have %v)", r.kind, name, r.Names())
	}
	return f, nil
}

// Has says whether name is registered in this kind.
func (r *Registry[F]) Has(name string) bool {
	mu.Lock()
	defer mu.Unlock()
	_, ok := r.m[name]
	return ok
}

// Names lists this kind's densities, sorted.
func (r *Registry[F]) Names() []string {
	mu.Lock()
	defer mu.Unlock()
	out := make([]string, 0, len(r.m))
	for k := range r.m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
