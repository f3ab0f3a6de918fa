package pipeline_test

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/inspectd/inspectd/engine"
	"github.com/inspectd/inspectd/internal/testenv"
	"github.com/inspectd/inspectd/model"
)

// golden is what a pooled model file scored when it was written: the scores
// of held-out good parts and of defects, and the total heat of each defect's
// heatmap (the gradient path). Compared within goldenTol, not to the last
// bit: ONNX Runtime and OpenBLAS pick their kernels by CPU (AVX2, AVX-512),
// which moves the last bits of every feature, and the heatmap sums its
// reference maps in map order.
type golden struct {
	Good, Bad []float64
	Heat      []float64
}

// The pooled model files in testdata were calibrated by the code before the
// densities went on the registry (INSPECTD_WRITE_GOLDEN=1 writes them
// again): they must load unchanged, score and heat as they did then, and
// calibrating the same parts today must give the same tensors and
// threshold.
func TestPooledModelFilesScoreAsWritten(t *testing.T) {
	testenv.RequireORT(t)
	held := goodImages(t, 6, heldSeed)
	bad := defects(t)[:4]
	for _, method := range []model.Method{model.Flow, model.Gaussian} {
		t.Run(string(method), func(t *testing.T) {
			file := filepath.Join("testdata", "pooled-"+string(method)+".zip")
			goldenFile := filepath.Join("testdata", "pooled-"+string(method)+".json")
			backbone, sha := tinyBackbone(t)
			fx := calibrate(t, method)
			if os.Getenv("INSPECTD_WRITE_GOLDEN") != "" {
				b, err := os.ReadFile(fx.saved)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m, err := model.Load(file)
			if err != nil {
				t.Fatal(err)
			}
			var stored bytes.Buffer
			if err := json.Compact(&stored, m.Manifest.MethodConfig); err != nil {
				t.Fatal(err)
			}
			if !closeRel(fx.model.Manifest.Threshold.Value, m.Manifest.Threshold.Value, goldenTol) || fx.model.Manifest.Method != m.Manifest.Method ||
				string(fx.model.Manifest.MethodConfig) != stored.String() {
				t.Errorf("calibrating again: method %s %s, threshold %v; the file has %s %s, %v", fx.model.Manifest.Method,
					fx.model.Manifest.MethodConfig, fx.model.Manifest.Threshold.Value, m.Manifest.Method, m.Manifest.MethodConfig, m.Manifest.Threshold.Value)
			}
			if len(fx.model.Tensors) != len(m.Tensors) {
				t.Errorf("calibrating again: %d tensors; the file has %d", len(fx.model.Tensors), len(m.Tensors))
			}
			for name, want := range m.Tensors {
				got, ok := fx.model.Tensors[name]
				if !ok || !slices.Equal(got.Shape, want.Shape) {
					t.Errorf("calibrating again: tensor %s is missing or has shape %v, not the file's %v", name, got.Shape, want.Shape)
					continue
				}
				if d := tensorDev(got.Data, want.Data); d > tensorTol {
					t.Errorf("calibrating again: tensor %s differs from the file's by %.3g of its largest value", name, d)
				}
			}
			ex := openExtractor(t, engine.ONNXRuntime, backbone, m.Manifest.Features)
			in := inspector(t, m, ex, sha)
			var got golden
			for _, r := range scores(t, in, held, false) {
				got.Good = append(got.Good, r.Score)
			}
			for _, r := range scores(t, in, bad, true) {
				got.Bad = append(got.Bad, r.Score)
				var sum float64
				for _, v := range r.Heat {
					sum += float64(v)
				}
				got.Heat = append(got.Heat, sum)
			}
			if os.Getenv("INSPECTD_WRITE_GOLDEN") != "" {
				b, _ := json.MarshalIndent(got, "", "  ")
				if err := os.WriteFile(goldenFile, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(goldenFile)
			if err != nil {
				t.Fatal(err)
			}
			var want golden
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			for i := range want.Good {
				if !closeRel(got.Good[i], want.Good[i], goldenTol) {
					t.Errorf("good part %d scores %v, %v when the file was written", i, got.Good[i], want.Good[i])
				}
			}
			for i := range want.Bad {
				if !closeRel(got.Bad[i], want.Bad[i], goldenTol) {
					t.Errorf("defect %d scores %v, %v when the file was written", i, got.Bad[i], want.Bad[i])
				}
			}
			for i := range want.Heat {
				if !closeRel(got.Heat[i], want.Heat[i], 1e-5) {
					t.Errorf("defect %d: heat %v, %v when the file was written", i, got.Heat[i], want.Heat[i])
				}
			}
		})
	}
}

// goldenTol bounds scores' relative change across CPUs: float32 features
// differ there in the 7th digit (2e-8 relative measured between two x86
// machines), a changed method moves them by far more than 1e-6.
const goldenTol = 1e-6

// tensorTol bounds a recalibrated tensor's largest deviation from the
// file's, as a share of the tensor's largest magnitude: the flow trains for
// several epochs on those features, which amplifies the 7th digit.
const tensorTol = 1e-3

func closeRel(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Abs(want)
}

func tensorDev(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var dev, scale float64
	for i := range want {
		dev = max(dev, math.Abs(float64(got[i])-float64(want[i])))
		scale = max(scale, math.Abs(float64(want[i])))
	}
	if scale == 0 {
		if dev == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return dev / scale
}
