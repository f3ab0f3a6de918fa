// Package options turns settings (package config) into the plain option
// structs of the packages that act on them: the one place where
// configuration becomes engine.Options and pipeline.Options, for the CLI,
// the demo and the daemon alike, so the method's packages never read
// configuration.
package options

import (
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/engine"
	"github.com/inspectd/inspectd/pipeline"
)

// Engine is how to run rc's backbone (rc.Backbone: set it first to the file
// BackboneFor chose) returning the given outputs.
func Engine(rc config.Runtime, outputs []string) engine.Options {
	return engine.Options{Kind: engine.Kind(rc.Engine), Model: rc.Backbone, Outputs: outputs,
		Threads: rc.Threads, Library: rc.ORTLib, Provider: engine.Provider(rc.Provider)}
}

// Pipeline is how pipeline.Open runs a model's backbone under rc.
func Pipeline(rc config.Runtime) pipeline.Options {
	return pipeline.Options{Engine: Engine(rc, nil), BackboneDirs: rc.BackboneDirs(), MaxBatch: rc.MaxBatch}
}
