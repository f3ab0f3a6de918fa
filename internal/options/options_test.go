package options_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/engine"
	"github.com/inspectd/inspectd/internal/options"
)

// Every runtime setting reaches the option structs, and nothing else is
// invented on the way.
func TestFromRuntime(t *testing.T) {
	rc := config.Runtime{Backbone: "/models/b.onnx", Engine: "opencv", ORTLib: "/lib/ort.so", Provider: "cuda", Threads: 3, MaxBatch: 5}
	eo := options.Engine(rc, []string{"t1", "t2"})
	want := engine.Options{Kind: engine.OpenCV, Model: "/models/b.onnx", Outputs: []string{"t1", "t2"}, Threads: 3, Library: "/lib/ort.so", Provider: engine.CUDA}
	if eo.Kind != want.Kind || eo.Model != want.Model || !slices.Equal(eo.Outputs, want.Outputs) || eo.Threads != want.Threads ||
		eo.Library != want.Library || eo.Provider != want.Provider {
		t.Errorf("Engine = %+v, want %+v", eo, want)
	}
	po := options.Pipeline(rc)
	if po.Engine.Model != rc.Backbone || po.Engine.Outputs != nil || po.Engine.Threads != 3 || po.MaxBatch != 5 {
		t.Errorf("Pipeline = %+v: want the backbone, no outputs (Open sets the model's taps), 3 threads, batch 5", po)
	}
	if len(po.BackboneDirs) == 0 || po.BackboneDirs[0] != filepath.Dir(rc.Backbone) || !slices.Equal(po.BackboneDirs, rc.BackboneDirs()) {
		t.Errorf("Pipeline backbone dirs %v, want config's %v, starting beside INSPECTD_BACKBONE", po.BackboneDirs, rc.BackboneDirs())
	}
}
