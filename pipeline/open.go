package pipeline

import (
	"fmt"

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

// Options say how Open runs a model's backbone: plain values, so the
// settings are read once at the top (internal/options builds them from
// config.Runtime).
type Options struct {
	// Engine selects the runtime. Its Model is the default backbone
	// (INSPECTD_BACKBONE); Outputs are set by Open to the model's taps.
	Engine engine.Options
	// BackboneDirs are searched, in order, for the backbone file the model
	// names before Engine.Model is used.
	BackboneDirs []string
	MaxBatch     int // images per backbone call
}

// Open loads a model file and opens its backbone as opts say. It refuses a
// model calibrated with another backbone, naming both checksums.
func Open(opts Options, path string) (*Loaded, error) {
	m, err := model.Load(path)
	if err != nil {
		return nil, err
	}
	// The model names its backbone file; one of that name beside
	// INSPECTD_BACKBONE (or in the usual places) is tried first, so models
	// on different backbones run side by side. The checksum decides.
	eo := opts.Engine
	var sha string
	if p := model.FindBackbone(m.Manifest.Backbone.File, eo.Model, opts.BackboneDirs...); p != eo.Model {
		if s, err := model.FileSHA256(p); err == nil && s == m.Manifest.Backbone.SHA256 {
			eo.Model, sha = p, s
		}
	}
	if sha == "" {
		if sha, err = model.FileSHA256(eo.Model); err != nil {
			return nil, fmt.Errorf("backbone %s: %w (set INSPECTD_BACKBONE)", eo.Model, err)
		}
	}
	if sha != m.Manifest.Backbone.SHA256 {
		return nil, fmt.Errorf("model %s was calibrated with backbone %s (sha256 %s) but %s has sha256 %s: recalibrate or point INSPECTD_BACKBONE at the right file",
			path, m.Manifest.Backbone.File, m.Manifest.Backbone.SHA256, eo.Model, sha)
	}
	eo.Outputs = m.Manifest.Features.Taps
	rt, err := engine.Open(eo)
	if err != nil {
		return nil, err
	}
	ex, err := NewExtractor(m, rt, opts.MaxBatch)
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
