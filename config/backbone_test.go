package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/inspectd/inspectd/engine/tiny"
)

func TestBackboneFor(t *testing.T) {
	dir := t.TempDir()
	set := filepath.Join(dir, "mine.onnx")
	if err := tiny.WriteFile(set, 1); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.onnx")
	if err := os.WriteFile(other, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := Runtime{Backbone: set}
	tests := []struct {
		name string
		file string
		taps []string
		want string
	}{
		{"INSPECTD_BACKBONE has the taps", "other.onnx", []string{tiny.Tap1, tiny.Tap2}, set},
		{"taps elsewhere: the named file beside it", "other.onnx", []string{"layer2_s8_preact"}, other},
		{"a path is taken as given", "/some/where.onnx", []string{tiny.Tap1}, "/some/where.onnx"},
		{"named file nowhere: INSPECTD_BACKBONE", "missing.onnx", []string{"x"}, set},
	}
	for _, tc := range tests {
		// FindBackbone returns absolute paths; compare both that way.
		got, _ := filepath.Abs(r.BackboneFor(tc.file, tc.taps))
		want, _ := filepath.Abs(tc.want)
		if got != want {
			t.Errorf("%s: %s, want %s", tc.name, got, want)
		}
	}
}
