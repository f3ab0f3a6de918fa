package model

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/transform"
)

func sample() (Manifest, []Tensor) {
	man := Manifest{Backbone: Backbone{File: "b.onnx", SHA256: "ab"}, Method: Gaussian, TestTransforms: 8,
		Features:   features.Config{Taps: []string{"t"}, Scales: []int{224}, Mean: features.ImageNetMean, Std: features.ImageNetStd},
		Transforms: transform.Config{Mode: transform.Small, MaxAngle: 10}, HeatmapSigma: 4,
		Threshold: Threshold{Value: 1.5, Method: "kfold-lognormal", TargetFRR: 0.01, Samples: 16},
		Training:  Training{Shape: &PartShape{AspectMin: 0.9, AspectMedian: 1, AspectMax: 1.1}}}
	return man, []Tensor{
		{Name: "a", Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, -6.5}},
		{Name: "b", Shape: []int{1}, Data: []float32{7}},
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.zip")
	man, ts := sample()
	if err := Save(path, man, ts); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Manifest.Threshold, man.Threshold) || m.Manifest.Version != FormatVersion || len(m.Manifest.ID) != 12 {
		t.Fatalf("manifest %+v", m.Manifest)
	}
	for _, want := range ts {
		got, err := m.Tensor(want.Name)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Data) != len(want.Data) {
			t.Fatalf("%s: %v", want.Name, got.Data)
		}
		for i := range want.Data {
			if got.Data[i] != want.Data[i] {
				t.Fatalf("%s: %v, want %v", want.Name, got.Data, want.Data)
			}
		}
	}
	if _, err := m.Tensor("zzz"); err == nil {
		t.Error("missing tensor not reported")
	}
}

// rewrite rebuilds the zip at path with one member changed.
func rewrite(t *testing.T, path, member string, change func([]byte) []byte) {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		r, _ := f.Open()
		var b bytes.Buffer
		b.ReadFrom(r)
		r.Close()
		data := b.Bytes()
		if f.Name == member {
			data = change(data)
		}
		w, _ := zw.Create(f.Name)
		w.Write(data)
	}
	zr.Close()
	zw.Close()
	os.WriteFile(path, buf.Bytes(), 0o644)
}

func TestLoadRejects(t *testing.T) {
	cases := []struct {
		name    string
		damage  func(t *testing.T, path string)
		wantErr string
	}{
		{"missing", func(t *testing.T, p string) { os.Remove(p) }, "does not exist"},
		{"truncated", func(t *testing.T, p string) {
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
		}, "not a usable inspectd model"},
		{"flipped weight byte", func(t *testing.T, p string) {
			rewrite(t, p, "weights.bin", func(b []byte) []byte { b[3] ^= 0x40; return b })
		}, "checksum"},
		{"newer version", func(t *testing.T, p string) {
			rewrite(t, p, "manifest.json", func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"version": 1`), []byte(`"version": 9`), 1)
			})
		}, "format version 9"},
		{"tensor outside weights", func(t *testing.T, p string) {
			rewrite(t, p, "manifest.json", func(b []byte) []byte {
				var m map[string]any
				json.Unmarshal(b, &m)
				m["tensors"].([]any)[1].(map[string]any)["offset"] = 100
				out, _ := json.Marshal(m)
				return out
			})
		}, "lies outside"},
		{"not a zip", func(t *testing.T, p string) { os.WriteFile(p, []byte("hello"), 0o644) }, "not a usable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.zip")
			man, ts := sample()
			if err := Save(path, man, ts); err != nil {
				t.Fatal(err)
			}
			c.damage(t, path)
			_, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v; want %q", err, c.wantErr)
			}
			if c.name != "missing" && !errors.Is(err, ErrFormat) {
				t.Errorf("error %v is not ErrFormat", err)
			}
		})
	}
}

// A failed save must leave the earlier model in place.
func TestSaveFailureKeepsOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.zip")
	man, ts := sample()
	if err := Save(path, man, ts); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	bad := []Tensor{{Name: "x", Shape: []int{5}, Data: []float32{1}}}
	if err := Save(path, man, bad); err == nil {
		t.Fatal("inconsistent tensor accepted")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("failed save changed the file")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("leftover files: %v", entries)
	}
}

// The model file's mode follows the umask (on main it was forced to 0644,
// readable by all even under the unit's UMask=0027).
func TestSaveHonoursUmask(t *testing.T) {
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "m.zip")
	man, ts := sample()
	if err := Save(path, man, ts); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %04o under umask 0027; want 0640", fi.Mode().Perm())
	}
}

func TestOffShape(t *testing.T) {
	// Good parts from 4:3 to 3:2 (median 1.4).
	s := &PartShape{AspectMin: 4.0 / 3, AspectMedian: 1.4, AspectMax: 1.5}
	cases := []struct {
		name string
		s    *PartShape
		w, h int
		off  bool
	}{
		{"the median", s, 700, 500, false},
		{"narrowest good", s, 400, 300, false},
		{"within tolerance below", s, 107, 100, false}, // 1.07 x 1.25 = 1.34 >= 4/3
		{"beyond tolerance below", s, 106, 100, true},
		{"within tolerance above", s, 187, 100, false}, // 1.5 x 1.25 = 1.875
		{"beyond tolerance above", s, 188, 100, true},
		{"portrait of a landscape part", s, 300, 400, true},
		{"a strip", s, 1130, 160, true},
		{"no recorded shape (older model)", nil, 1130, 10, false},
		{"empty image", s, 0, 100, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			why := c.s.OffShape(c.w, c.h)
			if (why != "") != c.off {
				t.Fatalf("OffShape(%d, %d) = %q, want off %v", c.w, c.h, why, c.off)
			}
			if c.off && !strings.Contains(why, fmt.Sprintf("%dx%d", c.w, c.h)) {
				t.Errorf("reason %q does not name the part's size", why)
			}
		})
	}
}
