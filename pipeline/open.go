package pipeline

import (
	"fmt"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/engine"
	"github.com/inspectd/inspectd/model"
)

// Loaded is an inspector with the runtime it owns.
type Loaded struct {
	*Inspector
	Path    string
	Runtime engine.Runtime
}

// Close releases the runtime.
func (l *Loaded) Close() error { return l.Runtime.Close() }

// Open loads a model file and opens its backbone as rc says. It refuses a
// model calibrated with another backbone, naming both checksums.
func Open(rc config.Runtime, path string) (*Loaded, error) {
	m, err := model.Load(path)
	if err != nil {
		return nil, err
	}
	// The model names its backbone file; one of that name beside
	// INSPECTD_BACKBONE (or in the usual places) is tried first, so models
	// on different backbones run side by side. The checksum decides.
	var sha string
	if p := rc.FindBackbone(m.Manifest.Backbone.File); p != rc.Backbone {
		if s, err := model.FileSHA256(p); err == nil && s == m.Manifest.Backbone.SHA256 {
			rc.Backbone, sha = p, s
		}
	}
	if sha == "" {
		if sha, err = model.FileSHA256(rc.Backbone); err != nil {
			return nil, fmt.Errorf("backbone %s: %w (set INSPECTD_BACKBONE)", rc.Backbone, err)
		}
	}
	if sha != m.Manifest.Backbone.SHA256 {
		return nil, fmt.Errorf("model %s was calibrated with backbone %s (sha256 %s) but %s has sha256 %s: recalibrate or point INSPECTD_BACKBONE at the right file",
			path, m.Manifest.Backbone.File, m.Manifest.Backbone.SHA256, rc.Backbone, sha)
	}
	rt, err := rc.Open(m.Manifest.Features.Taps)
	if err != nil {
		return nil, err
	}
	ex, err := NewExtractor(m, rt, rc.MaxBatch)
	if err != nil {
		rt.Close()
		return nil, err
	}
	in, err := NewInspector(m, ex, sha)
	if err != nil {
		rt.Close()
		return nil, err
	}
	return &Loaded{Inspector: in, Path: path, Runtime: rt}, nil
}
