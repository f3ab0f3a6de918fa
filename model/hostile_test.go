package model

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// member is one zip member of a hand-made model file.
type member struct {
	name   string
	data   []byte
	method uint16
}

// zipOf builds a zip with the members in order (duplicates allowed).
func zipOf(t testing.TB, ms ...member) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
	for _, m := range ms {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: m.name, Method: m.method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// hostile returns the sample model's manifest as a JSON map and its weights,
// for a test to change any field, and packs them back with a correct
// checksum (so only the change under test is wrong).
func hostile(t testing.TB) (map[string]any, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.zip")
	man, ts := sample()
	if err := Save(path, man, ts); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var js, wb []byte
	for _, f := range zr.File {
		r, _ := f.Open()
		b, _ := io.ReadAll(r)
		r.Close()
		if f.Name == "manifest.json" {
			js = b
		} else {
			wb = b
		}
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	return m, wb
}

func pack(t testing.TB, man map[string]any, weights []byte) []byte {
	t.Helper()
	sum := sha256.Sum256(weights)
	man["weights_sha256"] = hex.EncodeToString(sum[:])
	js, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	return zipOf(t, member{"manifest.json", js, zip.Store}, member{"weights.bin", weights, zip.Store})
}

func loadBytes(t testing.TB, b []byte) (*Model, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.zip")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(path)
}

func tensor(man map[string]any, i int) map[string]any {
	return man["tensors"].([]any)[i].(map[string]any)
}

func flowConfigJSON(dim, blocks, hidden, depth float64) map[string]any {
	return map[string]any{"Dim": dim, "Blocks": blocks, "Hidden": hidden, "Depth": depth, "whiten": true}
}

// Every size a model file declares is bounded: each case must be refused
// with ErrFormat and a reason, never a panic or a huge allocation. On main
// before the bounds, the shape and offset cases panicked (slice bounds) and
// the manifest cases loaded and failed later (makeslice panic, OOM, OpenCV
// abort at the first heatmap).
func TestLoadRefusesHostileManifest(t *testing.T) {
	cases := []struct {
		name   string
		change func(m map[string]any, w []byte) []byte
		want   string
	}{
		{"shape product overflows", func(m map[string]any, w []byte) []byte {
			tensor(m, 0)["shape"] = []any{1 << 62, 2}
			return w
		}, "holds more than"},
		{"shape product wraps to small", func(m map[string]any, w []byte) []byte {
			tensor(m, 0)["shape"] = []any{1 << 32, 1 << 32, 1} // 2^64 wraps to 0
			return w
		}, "holds more than"},
		{"offset 2^63-1", func(m map[string]any, w []byte) []byte {
			tensor(m, 1)["offset"] = math.MaxInt64
			return w
		}, "lies outside"},
		{"negative offset", func(m map[string]any, w []byte) []byte {
			tensor(m, 1)["offset"] = -1
			return w
		}, "lies outside"},
		{"negative dimension", func(m map[string]any, w []byte) []byte {
			tensor(m, 0)["shape"] = []any{-2, -3}
			return w
		}, "negative dimension"},
		{"too many dimensions", func(m map[string]any, w []byte) []byte {
			tensor(m, 1)["shape"] = []any{1, 1, 1, 1, 1, 1, 1, 1, 1}
			return w
		}, "dimensions"},
		{"tensor listed twice", func(m map[string]any, w []byte) []byte {
			tensor(m, 1)["name"] = "a"
			return w
		}, "listed twice"},
		{"test transforms 2^50", func(m map[string]any, w []byte) []byte {
			m["test_transforms"] = 1 << 50
			return w
		}, "test_transforms"},
		{"heatmap sigma 1e9", func(m map[string]any, w []byte) []byte {
			m["heatmap_sigma"] = 1e9
			return w
		}, "heatmap_sigma"},
		{"negative heatmap sigma", func(m map[string]any, w []byte) []byte {
			m["heatmap_sigma"] = -1
			return w
		}, "heatmap_sigma"},
		{"scale 1e6", func(m map[string]any, w []byte) []byte {
			m["features"].(map[string]any)["scales"] = []any{1000000}
			return w
		}, "scale"},
		{"too many scales", func(m map[string]any, w []byte) []byte {
			m["features"].(map[string]any)["scales"] = []any{64, 64, 64, 64, 64, 64, 64, 64, 64}
			return w
		}, "scales"},
		{"too many taps", func(m map[string]any, w []byte) []byte {
			taps := make([]any, MaxTaps+1)
			for i := range taps {
				taps[i] = "t"
			}
			m["features"].(map[string]any)["taps"] = taps
			return w
		}, "taps"},
		{"transform mode unknown", func(m map[string]any, w []byte) []byte {
			m["transforms"] = map[string]any{"mode": "spin"}
			return w
		}, "unknown mode"},
		{"flow hidden 1e12", func(m map[string]any, w []byte) []byte {
			m["method"], m["method_config"] = "flow", flowConfigJSON(960, 8, 1e12, 1)
			return w
		}, "Hidden"},
		{"flow blocks 1e6", func(m map[string]any, w []byte) []byte {
			m["method"], m["method_config"] = "flow", flowConfigJSON(960, 1e6, 64, 1)
			return w
		}, "Blocks"},
		{"flow depth 1000", func(m map[string]any, w []byte) []byte {
			m["method"], m["method_config"] = "flow", flowConfigJSON(960, 8, 64, 1000)
			return w
		}, "Depth"},
		{"flow dim 2^40", func(m map[string]any, w []byte) []byte {
			m["method"], m["method_config"] = "flow", flowConfigJSON(1<<40, 8, 64, 1)
			return w
		}, "Dim"},
		{"flow larger than its weights", func(m map[string]any, w []byte) []byte {
			// Each limit respected, but 2 GB of parameters from a 28-byte file.
			m["method"], m["method_config"] = "flow", flowConfigJSON(MaxFeatureDim, MaxFlowBlocks, MaxFlowHidden, 2)
			return w
		}, "the file holds 7 values"},
		{"pooled flow with a condition", func(m map[string]any, w []byte) []byte {
			c := flowConfigJSON(960, 8, 64, 1)
			c["Cond"] = 4096
			m["method"], m["method_config"] = "flow", c
			return w
		}, "unconditional"},
		{"flow config not an object", func(m map[string]any, w []byte) []byte {
			m["method"], m["method_config"] = "flow", "big"
			return w
		}, "configuration"},
		{"gaussian shrinkage 7", func(m map[string]any, w []byte) []byte {
			m["method_config"] = map[string]any{"dim": 3, "shrinkage": 7}
			return w
		}, "shrinkage"},
		{"threshold huge", func(m map[string]any, w []byte) []byte {
			m["threshold"].(map[string]any)["value"] = math.MaxFloat64
			return w
		}, "threshold"},
		{"bad roi", func(m map[string]any, w []byte) []byte {
			m["roi"] = "0,0,-5,5"
			return w
		}, "ROI"},
		{"method name with control characters", func(m map[string]any, w []byte) []byte {
			m["method"] = "flow\x1b[2J"
			return w
		}, "printable"},
		{"too many good scores", func(m map[string]any, w []byte) []byte {
			m["training"].(map[string]any)["good_scores"] = make([]any, MaxGoodScores+1)
			return w
		}, "good scores"},
		{"part shape out of order", func(m map[string]any, w []byte) []byte {
			m["training"].(map[string]any)["shape"] = map[string]any{"aspect_min": 2, "aspect_median": 1, "aspect_max": 3}
			return w
		}, "part shape"},
		{"part shape zero", func(m map[string]any, w []byte) []byte {
			m["training"].(map[string]any)["shape"] = map[string]any{"aspect_min": 0, "aspect_median": 1, "aspect_max": 1}
			return w
		}, "part shape"},
		{"part shape 1e300", func(m map[string]any, w []byte) []byte {
			m["training"].(map[string]any)["shape"] = map[string]any{"aspect_min": 1, "aspect_median": 1, "aspect_max": 1e300}
			return w
		}, "part shape"},
		{"weights not whole floats", func(m map[string]any, w []byte) []byte {
			return append(w, 0)
		}, "not whole float32"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			man, w := hostile(t)
			w = c.change(man, w)
			_, err := loadBytes(t, pack(t, man, w))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v; want one containing %q", err, c.want)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %v is not ErrFormat", err)
			}
		})
	}
}

// The zip container itself: duplicate members and members whose declared
// uncompressed size is out of proportion to the file are refused before
// anything is read.
func TestLoadRefusesHostileZip(t *testing.T) {
	man, w := hostile(t)
	good := pack(t, man, w)
	zr, err := zip.NewReader(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	var js []byte
	for _, f := range zr.File {
		if f.Name == "manifest.json" {
			r, _ := f.Open()
			js, _ = io.ReadAll(r)
			r.Close()
		}
	}
	if _, err := loadBytes(t, good); err != nil {
		t.Fatalf("the untouched file must load: %v", err)
	}

	t.Run("duplicate member", func(t *testing.T) {
		// A second manifest.json: which one a reader takes is up to the
		// reader (unzip and Go disagree), so neither is trusted.
		other := bytes.Replace(js, []byte(`"test_transforms":8`), []byte(`"test_transforms":64`), 1)
		b := zipOf(t, member{"manifest.json", js, zip.Store}, member{"weights.bin", w, zip.Store},
			member{"manifest.json", other, zip.Store})
		_, err := loadBytes(t, b)
		if err == nil || !strings.Contains(err.Error(), "appears twice") || !errors.Is(err, ErrFormat) {
			t.Fatalf("error %v; want a duplicate member refused", err)
		}
	})

	t.Run("1 MB zip holding 1 GiB", func(t *testing.T) {
		if testing.Short() {
			t.Skip("builds a 1 GiB deflate stream (about 1 s)")
		}
		var bomb bytes.Buffer
		zw := zip.NewWriter(&bomb)
		zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
		mw, _ := zw.Create("manifest.json")
		mw.Write(js)
		ww, _ := zw.CreateHeader(&zip.FileHeader{Name: "weights.bin", Method: zip.Deflate})
		zero := make([]byte, 1<<20)
		for range 1024 {
			ww.Write(zero)
		}
		zw.Close()
		if bomb.Len() > 2<<20 {
			t.Fatalf("bomb is %d bytes; the test wants about 1 MB", bomb.Len())
		}
		path := filepath.Join(t.TempDir(), "bomb.zip")
		os.WriteFile(path, bomb.Bytes(), 0o600)
		bomb = bytes.Buffer{}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Load(path)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), "uncompressed") || !errors.Is(err, ErrFormat) {
			t.Fatalf("error %v; want the bomb refused for its uncompressed size", err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
			t.Errorf("refusing the bomb allocated %d MB; want it refused from the directory", alloc>>20)
		}
		t.Logf("refused: %v (allocated %d KB)", err, (after.TotalAlloc-before.TotalAlloc)>>10)
	})

	t.Run("manifest above its limit", func(t *testing.T) {
		big := append(bytes.Clone(bytes.TrimSuffix(bytes.TrimSpace(js), []byte("}"))), []byte(`,"pad":"`)...)
		big = append(big, bytes.Repeat([]byte("x"), MaxManifestBytes)...)
		big = append(big, []byte(`"}`)...)
		b := zipOf(t, member{"manifest.json", big, zip.Store}, member{"weights.bin", w, zip.Store})
		_, err := loadBytes(t, b)
		if err == nil || !strings.Contains(err.Error(), "manifest.json declares") {
			t.Fatalf("error %v; want the manifest refused for its size", err)
		}
	})

	t.Run("deflated model loads", func(t *testing.T) {
		// Recompressing a model with another tool must stay possible.
		b := zipOf(t, member{"manifest.json", js, zip.Deflate}, member{"weights.bin", w, zip.Deflate})
		if _, err := loadBytes(t, b); err != nil {
			t.Fatal(err)
		}
	})
}

// Every known method has bounds, so a new Method cannot skip them unnoticed.
func TestEveryMethodHasBounds(t *testing.T) {
	for _, m := range []Method{Flow, Gaussian} {
		if methodBounds[m] == nil {
			t.Errorf("method %s has no bounds in methodBounds", m)
		}
	}
}

func TestTensorSize(t *testing.T) {
	cases := []struct {
		shape []int
		want  int
		ok    bool
	}{
		{nil, 1, true},
		{[]int{0, 5}, 0, true},
		{[]int{2, 3, 4}, 24, true},
		{[]int{MaxTensorValues}, MaxTensorValues, true},
		{[]int{MaxTensorValues, 2}, 0, false},
		{[]int{math.MaxInt, math.MaxInt}, 0, false},
		{[]int{1 << 31, 1 << 31, 4}, 0, false},
		{[]int{0, math.MaxInt}, 0, true}, // zero values however large the rest
		{[]int{3, -1}, 0, false},
	}
	for _, c := range cases {
		got, err := TensorSize(c.shape)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("TensorSize(%v) = %d, %v; want %d, ok %v", c.shape, got, err, c.want, c.ok)
		}
	}
}

// FuzzLoad feeds arbitrary bytes to the model reader: it may refuse them,
// never panic, and what it accepts is consistent. Seeds: testdata/fuzz/FuzzLoad
// and a valid model made here. Run with
// go test -run '^$' -fuzz FuzzLoad -fuzztime 30s ./model/
func FuzzLoad(f *testing.F) {
	man, w := hostile(f)
	f.Add(pack(f, man, w))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v is not ErrFormat", err)
			}
			return
		}
		for name, ts := range m.Tensors {
			n, err := TensorSize(ts.Shape)
			if err != nil || n != len(ts.Data) {
				t.Fatalf("tensor %s: shape %v, %d values", name, ts.Shape, len(ts.Data))
			}
		}
	})
}

// The little-endian layout is part of the format.
func TestWeightsLittleEndian(t *testing.T) {
	man, w := hostile(t)
	binary.LittleEndian.PutUint32(w[0:], math.Float32bits(42))
	m, err := loadBytes(t, pack(t, man, w))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Tensors["a"].Data[0]; got != 42 {
		t.Fatalf("first value %v, want 42", got)
	}
}
