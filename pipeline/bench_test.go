package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/engine"
	"github.com/inspectd/inspectd/evalstats"
	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/internal/testenv"
	"github.com/inspectd/inspectd/local"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/synth"
)

// BenchmarkInspect times one inspection with the pretrained backbone and the
// default calibration (flow on whitened features, 448+224+112 px), at T=8 and
// T=64, with and without the heatmap. Issue targets: 350 ms at T=8, 2.5 s at
// T=64 on this 2-core machine.
func BenchmarkInspect(b *testing.B) {
	backbone := testenv.RequireBackbone(b)
	lib := testenv.RequireORT(b)
	cfg := calibration.Defaults()
	cfg.TrainViews = 4 // calibration quality does not change the cost of a score
	rt, err := engine.Open(engine.Options{Model: backbone, Outputs: cfg.Features.Taps, Library: lib})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	ex, err := features.New(rt, cfg.Features, 2)
	if err != nil {
		b.Fatal(err)
	}
	imgs := make([]gocv.Mat, calibration.MinImages)
	names := make([]string, len(imgs))
	for i := range imgs {
		imgs[i] = synth.Good(int64(i), 256)
		names[i] = fmt.Sprint(i)
	}
	defer imageops.CloseAll(imgs)
	res, err := calibration.Calibrate(context.Background(), ex, backbone, imgs, names, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	sha, _ := model.FileSHA256(backbone)
	in := inspector(b, model.FromTensors(res.Manifest, res.Tensors), ex, sha)
	part := synth.Good(99, 256)
	defer part.Close()
	for _, T := range []int{8, 64} {
		for _, heat := range []bool{false, true} {
			b.Run(fmt.Sprintf("T=%d/heatmap=%v", T, heat), func(b *testing.B) {
				in.SetTransforms(T)
				ms := make([]float64, 0, b.N)
				for i := 0; i < b.N; i++ {
					start := time.Now()
					if _, err := in.Inspect(context.Background(), part, heat); err != nil {
						b.Fatal(err)
					}
					ms = append(ms, float64(time.Since(start).Microseconds())/1000)
				}
				// The median resists the other jobs of a shared machine.
				b.ReportMetric(evalstats.Median(ms), "ms/image-median")
			})
		}
	}
}

// BenchmarkInspectPatchCore times one inspection with the default patch
// method (PatchCore on ResNet-50 v2 layer2+layer3, T=1) at the default
// short side and at 256 px (the previous default, for the ratio in one
// run), and reports the calibration time on 16 parts. Issue targets: 350 ms
// per image, 90 s to calibrate on 16 parts, on this 2-core machine.
func BenchmarkInspectPatchCore(b *testing.B) {
	def := calibration.DefaultsFor(local.MethodPatchCore).Features.Scales[0]
	for _, scale := range []int{def, 256} {
		b.Run(fmt.Sprintf("scale=%d", scale), func(b *testing.B) { benchPatchCore(b, scale) })
	}
}

func benchPatchCore(b *testing.B, scale int) {
	lib := testenv.RequireORT(b)
	cfg := calibration.DefaultsFor(local.MethodPatchCore)
	cfg.Features.Scales = []int{scale}
	backbone := filepath.Join(filepath.Dir(testenv.RequireBackbone(b)), cfg.Backbone)
	if _, err := os.Stat(backbone); err != nil {
		testenv.Skip(b, "%s not found: skipping", backbone)
	}
	rt, err := engine.Open(engine.Options{Model: backbone, Outputs: cfg.Features.Taps, Library: lib})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	ex, err := features.New(rt, cfg.Features, 2)
	if err != nil {
		b.Fatal(err)
	}
	imgs := make([]gocv.Mat, 16)
	names := make([]string, len(imgs))
	for i := range imgs {
		imgs[i] = synth.Good(int64(i), 300)
		names[i] = fmt.Sprint(i)
	}
	defer imageops.CloseAll(imgs)
	start := time.Now()
	res, err := calibration.Calibrate(context.Background(), ex, backbone, imgs, names, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	calib := time.Since(start).Seconds()
	sha, _ := model.FileSHA256(backbone)
	in := inspector(b, model.FromTensors(res.Manifest, res.Tensors), ex, sha)
	part := synth.Good(99, 300)
	defer part.Close()
	for _, heat := range []bool{false, true} {
		b.Run(fmt.Sprintf("heatmap=%v", heat), func(b *testing.B) {
			ms := make([]float64, 0, b.N)
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := in.Inspect(context.Background(), part, heat); err != nil {
					b.Fatal(err)
				}
				ms = append(ms, float64(time.Since(t0).Microseconds())/1000)
			}
			b.ReportMetric(evalstats.Median(ms), "ms/image-median")
			b.ReportMetric(calib, "calibrate-s")
		})
	}
}
