package model_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/inspectd/inspectd/model"
)

func TestFindBackbone(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	for _, f := range []string{filepath.Join(first, "a.onnx"), filepath.Join(second, "a.onnx"), filepath.Join(second, "b.onnx")} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const fallback = "/etc/fallback.onnx"
	for _, tc := range []struct {
		name, file string
		dirs       []string
		want       string
	}{
		{"empty name: the fallback", "", []string{first, second}, fallback},
		{"a path as given, even absent", "sub/x.onnx", []string{first}, "sub/x.onnx"},
		{"first dir that has it", "a.onnx", []string{first, second}, filepath.Join(first, "a.onnx")},
		{"dir order decides", "a.onnx", []string{second, first}, filepath.Join(second, "a.onnx")},
		{"only in a later dir", "b.onnx", []string{first, second}, filepath.Join(second, "b.onnx")},
		{"nowhere: the fallback", "c.onnx", []string{first, second}, fallback},
		{"no dirs: the fallback", "a.onnx", nil, fallback},
	} {
		if got := model.FindBackbone(tc.file, fallback, tc.dirs...); got != tc.want {
			t.Errorf("%s: FindBackbone(%q) = %s, want %s", tc.name, tc.file, got, tc.want)
		}
	}
}
