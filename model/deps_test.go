package model_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoNativeDeps keeps reading a model file or a setting free of native
// code: neither package may reach OpenCV (gocv) or ONNX Runtime, directly or
// through another package's types.
func TestNoNativeDeps(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not on PATH (go test puts it there): %v", err)
	}
	forbidden := []string{"gocv.io/x/gocv", "github.com/yalue/onnxruntime_go"}
	for _, pkg := range []string{
		"github.com/inspectd/inspectd/model",
		"github.com/inspectd/inspectd/config",
		"github.com/inspectd/inspectd/spec",
	} {
		t.Run(pkg, func(t *testing.T) {
			out, err := exec.Command(goBin, "list", "-deps", pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", pkg, err)
			}
			deps := strings.Fields(string(out))
			if len(deps) < 2 {
				t.Fatalf("go list -deps %s listed %d packages: %q", pkg, len(deps), out)
			}
			for _, d := range deps {
				for _, f := range forbidden {
					if d == f || strings.HasPrefix(d, f+"/") {
						t.Errorf("%s depends on %s (native code)", pkg, d)
					}
				}
			}
		})
	}
}
