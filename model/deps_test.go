package model_test

import (
	"os/exec"
	"strings"
	"sync"
	"testing"
)

const mod = "github.com/inspectd/inspectd/"

var (
	depsOnce sync.Once
	depsOf   map[string][]string
	depsErr  error
)

// deps lists, for every package of the module, everything it imports
// directly or not (one `go list` for all of them).
func deps(t *testing.T) map[string][]string {
	t.Helper()
	depsOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			depsErr = err
			return
		}
		out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}:{{range .Deps}} {{.}}{{end}}", mod+"...").Output()
		if err != nil {
			depsErr = err
			return
		}
		depsOf = map[string][]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			pkg, ds, _ := strings.Cut(line, ":")
			depsOf[pkg] = strings.Fields(ds)
		}
	})
	if depsErr != nil {
		t.Fatalf("go list -deps (go test puts the go tool on PATH): %v", depsErr)
	}
	return depsOf
}

// TestArrows keeps the arrows ARCHITECTURE.md forbids out of the code:
// reading a model file or a setting links no native code (OpenCV through
// gocv, ONNX Runtime); the method never imports configuration, capture or
// the publishers; capture and the publishers never import the method.
func TestArrows(t *testing.T) {
	native := []string{"gocv.io/x/gocv", "github.com/yalue/onnxruntime_go"}
	method := []string{mod + "pipeline", mod + "calibration", mod + "flow", mod + "gaussian", mod + "local", mod + "pooled", mod + "features", mod + "engine"}
	outside := []string{mod + "config", mod + "capture", mod + "alerts", mod + "daemon", mod + "sparkplug", mod + "hass"}
	for _, tc := range []struct {
		pkgs      []string
		forbidden []string
		why       string
	}{
		{[]string{mod + "model", mod + "config", mod + "spec"}, native, "native code"},
		{append(method, mod+"transform"), outside, "configuration, capture or publishing"},
		{[]string{mod + "capture", mod + "alerts", mod + "sparkplug", mod + "hass"}, method, "the method"},
	} {
		for _, pkg := range tc.pkgs {
			ds, ok := deps(t)[pkg]
			if !ok || len(ds) == 0 {
				t.Errorf("go list gave no dependencies for %s", pkg)
				continue
			}
			for _, d := range ds {
				for _, f := range tc.forbidden {
					if d == f || strings.HasPrefix(d, f+"/") {
						t.Errorf("%s imports %s (%s)", pkg, d, tc.why)
					}
				}
			}
		}
	}
}
