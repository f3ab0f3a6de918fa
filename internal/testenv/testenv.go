// Package testenv finds the files that tests need but the repository does not
// hold: the ONNX Runtime shared library and ../shared (pretrained backbone,
// data sets). Tests that need them skip with a message saying what is missing
// and how to get it, so a clone elsewhere still passes; CI's .ci/run makes sure
// they are present so nothing is skipped there.
package testenv

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// RepoRoot walks up from the working directory to the folder holding go.mod.
func RepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// ORTArch is the folder name the npm package onnxruntime-node uses for this CPU.
func ORTArch() string {
	if runtime.GOARCH == "arm64" {
		return "arm64"
	}
	return "x64"
}

// ORTLibrary returns the ONNX Runtime shared library: $INSPECTD_ORT_LIB, else
// the copy scripts/setup.sh puts under .deps. Empty when neither exists.
func ORTLibrary() string {
	if p := os.Getenv("INSPECTD_ORT_LIB"); p != "" {
		return p
	}
	p := filepath.Join(RepoRoot(), ".deps", "onnxruntime", ORTArch(), "libonnxruntime.so.1")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// skip skips the test, except under INSPECTD_REQUIRE_ASSETS=1 (set by
// .ci/run), where a missing asset fails it so CI never silently skips.
func skip(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("INSPECTD_REQUIRE_ASSETS") == "1" {
		t.Fatalf("INSPECTD_REQUIRE_ASSETS=1 but: "+format, args...)
	}
	t.Skipf(format, args...)
}

// RequireORT skips the test when the ONNX Runtime library is absent.
func RequireORT(t testing.TB) string {
	t.Helper()
	p := ORTLibrary()
	if p == "" {
		skip(t, "ONNX Runtime library not found: run scripts/setup.sh or set INSPECTD_ORT_LIB")
	}
	return p
}

// SharedDir returns $INSPECTD_SHARED, else ../shared beside the repository.
// Empty when it does not exist.
func SharedDir() string {
	p := os.Getenv("INSPECTD_SHARED")
	if p == "" {
		p = filepath.Join(filepath.Dir(RepoRoot()), "shared")
	}
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		return p
	}
	return ""
}

// RequireShared skips the test when rel (a path inside ../shared) is absent and
// returns its full path otherwise.
func RequireShared(t testing.TB, rel string) string {
	t.Helper()
	dir := SharedDir()
	if dir == "" {
		skip(t, "../shared not found beside the repository (or INSPECTD_SHARED): skipping test that needs %s", rel)
	}
	p := filepath.Join(dir, rel)
	if _, err := os.Stat(p); err != nil {
		skip(t, "%s not found: skipping", p)
	}
	return p
}

// Backbone returns the pretrained taps model: $INSPECTD_BACKBONE, else the copy
// under .deps/models, else ../shared/models. Empty when none exists.
func Backbone() string {
	if p := os.Getenv("INSPECTD_BACKBONE"); p != "" {
		return p
	}
	for _, p := range []string{
		filepath.Join(RepoRoot(), ".deps", "models", "mobilenet_v2_taps.onnx"),
		filepath.Join(SharedDir(), "models", "mobilenet_v2_taps.onnx"),
	} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// RequireBackbone skips the test when the pretrained backbone is absent.
func RequireBackbone(t testing.TB) string {
	t.Helper()
	p := Backbone()
	if p == "" {
		skip(t, "pretrained backbone mobilenet_v2_taps.onnx not found (set INSPECTD_BACKBONE or place ../shared/models): skipping")
	}
	return p
}

// Skip skips the test for a missing asset, except under
// INSPECTD_REQUIRE_ASSETS=1, where it fails.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	skip(t, format, args...)
}
