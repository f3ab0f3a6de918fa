package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/engine"
	"github.com/inspectd/inspectd/engine/tiny"
	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/internal/testenv"
	"github.com/inspectd/inspectd/local"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/pipeline"
	"github.com/inspectd/inspectd/synth"
)

// The tiny backbone needs no download: its random convolutions still see
// stains and holes as shifts of the pooled activations, which is all these
// plumbing tests need. Accuracy with the real backbone is internal/cli's job.
const (
	imgSize   = 96
	nGood     = 10
	goodSeed  = 100
	heldSeed  = 500
	tinySeed  = 3
	maxBatch  = 8
	relTolCV  = 1e-3
	testViews = 4
	jitter    = 0.2
)

// testConfig starts from the calibration defaults (which are being tuned, so
// they are read, not copied) and only swaps in the tiny backbone's taps and
// sizes, and a smaller flow so calibration takes seconds. Colour jitter (as
// DifferNet trains) is on: without it ten parts give the flow a near-degenerate
// training set over the tiny backbone's 24 features, and it overfits so
// badly that held-out good parts score ~1e7 and defects score lower.
func testConfig(method model.Method) calibration.Config {
	if local.Is(string(method)) {
		// Patch methods: the tiny taps' full width on one aspect-true scale.
		cfg := calibration.DefaultsFor(method)
		cfg.Features.Taps = []string{tiny.Tap1, tiny.Tap2}
		cfg.Features.Scales, cfg.Features.Stride = []int{64}, 4
		cfg.Local.Grid.Dims = []int{0, 0}
		if method == local.MethodCFlow {
			// A short training keeps the test quick; the path is the same.
			cfg.Local.Density = json.RawMessage(`{"proj":8,"freqs":3,"blocks":2,"hidden":16,"depth":1,"clamp":1.9,"steps":60,"batch":128,"lr":0.002,"folds":4,"seed":1}`)
		}
		return cfg
	}
	cfg := calibration.Defaults()
	cfg.Transforms.Brightness, cfg.Transforms.Contrast, cfg.Transforms.Saturation = jitter, jitter, jitter
	cfg.Features.Taps = []string{tiny.Tap1, tiny.Tap2}
	cfg.Features.Scales = []int{64, 32}
	cfg.Method = method
	cfg.TrainViews = min(cfg.TrainViews, 8)
	cfg.TestViews = min(cfg.TestViews, testViews)
	cfg.Flow.Hidden = min(cfg.Flow.Hidden, 64)
	cfg.MaxEpochs = min(cfg.MaxEpochs, 60)
	return cfg
}

// fixture is one calibrated tiny model with the runtime it was made on.
type fixture struct {
	backbone, sha string
	model         *model.Model // as calibration returned it, never saved
	saved         string       // the same model written with model.Save
	ex            *features.Extractor
}

func tinyBackbone(t testing.TB) (path, sha string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "tiny.onnx")
	if err := tiny.WriteFile(path, tinySeed); err != nil {
		t.Fatal(err)
	}
	sha, err := model.FileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, sha
}

func openExtractor(t testing.TB, kind engine.Kind, backbone string, fc features.Config) *features.Extractor {
	t.Helper()
	opts := engine.Options{Kind: kind, Model: backbone, Outputs: fc.Taps, Threads: 1}
	if kind == engine.ONNXRuntime {
		opts.Library = testenv.RequireORT(t)
	}
	rt, err := engine.Open(opts)
	if err != nil {
		t.Fatalf("opening %s: %v", kind, err)
	}
	t.Cleanup(func() { rt.Close() })
	ex, err := features.New(rt, fc, maxBatch)
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

func goodImages(t testing.TB, n int, seed int64) []gocv.Mat {
	t.Helper()
	imgs := make([]gocv.Mat, n)
	for i := range imgs {
		imgs[i] = synth.Good(seed+int64(i), imgSize)
	}
	t.Cleanup(func() { imageops.CloseAll(imgs) })
	return imgs
}

func calibrate(t testing.TB, method model.Method) *fixture {
	t.Helper()
	cfg := testConfig(method)
	backbone, sha := tinyBackbone(t)
	ex := openExtractor(t, engine.ONNXRuntime, backbone, cfg.Features)
	imgs := goodImages(t, nGood, goodSeed)
	files := make([]string, len(imgs))
	for i := range files {
		files[i] = fmt.Sprintf("good%02d", i)
	}
	res, err := calibration.Calibrate(context.Background(), ex, backbone, imgs, files, cfg, nil)
	if err != nil {
		t.Fatalf("calibrating %s: %v", method, err)
	}
	saved := filepath.Join(t.TempDir(), "model.zip")
	if err := model.Save(saved, res.Manifest, res.Tensors); err != nil {
		t.Fatal(err)
	}
	return &fixture{backbone: backbone, sha: sha, model: model.FromTensors(res.Manifest, res.Tensors), saved: saved, ex: ex}
}

func inspector(t testing.TB, m *model.Model, ex *features.Extractor, sha string) *pipeline.Inspector {
	t.Helper()
	in, err := pipeline.NewInspector(m, ex, sha)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func scores(t testing.TB, in *pipeline.Inspector, imgs []gocv.Mat, withHeat bool) []pipeline.Result {
	t.Helper()
	out := make([]pipeline.Result, len(imgs))
	for i, img := range imgs {
		r, err := in.Inspect(context.Background(), img, withHeat)
		if err != nil {
			t.Fatalf("image %d: %v", i, err)
		}
		out[i] = r
	}
	return out
}

// defects draws one defect of every kind on held-out good parts.
func defects(t testing.TB) []gocv.Mat {
	t.Helper()
	var out []gocv.Mat
	for i, k := range synth.Kinds {
		for j := range 2 {
			g := synth.Good(int64(900+10*i+j), imgSize)
			img, mask, err := synth.Defect(g, k, int64(7+j))
			g.Close()
			if err != nil {
				t.Fatalf("drawing %s: %v", k, err)
			}
			mask.Close()
			out = append(out, img)
		}
	}
	t.Cleanup(func() { imageops.CloseAll(out) })
	return out
}

func mean(rs []pipeline.Result) float64 {
	var s float64
	for _, r := range rs {
		s += r.Score
	}
	return s / float64(len(rs))
}

func TestCalibratedInspector(t *testing.T) {
	testenv.RequireORT(t)
	held := goodImages(t, 6, heldSeed)
	bad := defects(t)
	for _, method := range []model.Method{model.Flow, model.Gaussian, local.MethodPatchCore, local.MethodCFlow} {
		t.Run(string(method), func(t *testing.T) {
			fx := calibrate(t, method)
			mem := inspector(t, fx.model, fx.ex, fx.sha)
			loaded, err := model.Load(fx.saved)
			if err != nil {
				t.Fatal(err)
			}
			disk := inspector(t, loaded, fx.ex, fx.sha)

			if local.Is(string(method)) {
				// Calibration records the heat guide with a radius for its
				// grid, so its heat maps are refined.
				var lm pipeline.LocalMethod
				if err := json.Unmarshal(fx.model.Manifest.MethodConfig, &lm); err != nil {
					t.Fatal(err)
				}
				if lm.HeatGuide <= 0 || lm.HeatGuideRadius < 1 {
					t.Errorf("heat guide eps %v, radius %d: want both set", lm.HeatGuide, lm.HeatGuideRadius)
				}
				// The same model without the guide (as models made before
				// it are) scores the same and gives a different heat map.
				lm.HeatGuide, lm.HeatGuideRadius = 0, 0
				plain := *fx.model
				plain.Manifest.MethodConfig, _ = json.Marshal(lm)
				a := scores(t, mem, bad[:1], true)[0]
				b := scores(t, inspector(t, &plain, fx.ex, fx.sha), bad[:1], true)[0]
				if a.Score != b.Score {
					t.Errorf("score %v with the heat guide, %v without", a.Score, b.Score)
				}
				if slices.Equal(a.Heat, b.Heat) {
					t.Error("heat map the same with and without the heat guide")
				}
			}
			goodMem := scores(t, mem, held, false)
			goodDisk := scores(t, disk, held, false)
			goodAgain := scores(t, mem, held, false)
			for i := range held {
				if goodMem[i].Score != goodDisk[i].Score {
					t.Errorf("image %d: saved and reloaded model scores %v, in-memory %v", i, goodDisk[i].Score, goodMem[i].Score)
				}
				if goodMem[i].Score != goodAgain[i].Score {
					t.Errorf("image %d: scored twice: %v then %v", i, goodMem[i].Score, goodAgain[i].Score)
				}
				if goodMem[i].Threshold != fx.model.Manifest.Threshold.Value {
					t.Errorf("image %d: threshold %v, model's %v", i, goodMem[i].Threshold, fx.model.Manifest.Threshold.Value)
				}
				if goodMem[i].Defect != (goodMem[i].Score > goodMem[i].Threshold) {
					t.Errorf("image %d: verdict %v for score %v at threshold %v", i, goodMem[i].Defect, goodMem[i].Score, goodMem[i].Threshold)
				}
			}

			// Confirmed-good parts: patch banks take them as a new
			// version; pooled densities and the patch flow refuse (they
			// would need a refit).
			man, tensors, _, err := mem.AddGood(context.Background(), fx.model, held[:1])
			extends := false
			if local.Is(string(method)) {
				d, _ := local.New(string(method), nil)
				_, extends = d.(local.Extender)
			}
			if extends {
				if err != nil {
					t.Errorf("adding a good part: %v", err)
				} else if man.Training.ConfirmedGood != 1 || man.Training.Parent != fx.model.Manifest.ID || len(tensors) != len(fx.model.Tensors) {
					t.Errorf("new version: %d confirmed, parent %q, %d tensors (had %d)", man.Training.ConfirmedGood, man.Training.Parent, len(tensors), len(fx.model.Tensors))
				}
			} else if !errors.Is(err, pipeline.ErrCannotLearn) {
				t.Errorf("adding a good part to %s: %v, want ErrCannotLearn", method, err)
			}

			badRes := scores(t, disk, bad, true)
			gm, bm := mean(goodMem), mean(badRes)
			t.Logf("%s: mean score good %.4g, defective %.4g, threshold %.4g", method, gm, bm, goodMem[0].Threshold)
			// The tiny backbone's random 4- and 8-channel taps do not tell
			// one patch from another well enough for a patch memory bank;
			// its accuracy is measured with the real backbone (internal/cli).
			if bm <= gm && !local.Is(string(method)) {
				t.Errorf("defective parts score %.4g on average, not above good parts' %.4g", bm, gm)
			}
			for i, r := range badRes {
				if len(r.Heat) != pipeline.HeatSize*pipeline.HeatSize {
					t.Fatalf("defect %d: heat has %d values, want %d", i, len(r.Heat), pipeline.HeatSize*pipeline.HeatSize)
				}
				var peak float32
				for p, v := range r.Heat {
					if v < 0 || math.IsNaN(float64(v)) {
						t.Fatalf("defect %d: heat[%d] = %v", i, p, v)
					}
					peak = max(peak, v)
				}
				if peak == 0 {
					t.Errorf("defect %d: heatmap is all zero", i)
				}
				// Heat must not change the score.
				plain, err := disk.Inspect(context.Background(), bad[i], false)
				if err != nil {
					t.Fatal(err)
				}
				if plain.Score != r.Score || plain.Heat != nil {
					t.Errorf("defect %d: score %v with heat, %v without (heat %d values)", i, r.Score, plain.Score, len(plain.Heat))
				}
			}
		})
	}
}

func TestBackboneMismatchRefused(t *testing.T) {
	testenv.RequireORT(t)
	fx := calibrate(t, model.Gaussian)
	other := filepath.Join(t.TempDir(), "other.onnx")
	if err := tiny.WriteFile(other, tinySeed+1); err != nil {
		t.Fatal(err)
	}
	otherSHA, err := model.FileSHA256(other)
	if err != nil {
		t.Fatal(err)
	}
	if otherSHA == fx.sha {
		t.Fatal("two tiny seeds gave the same file")
	}
	_, err = pipeline.NewInspector(fx.model, fx.ex, otherSHA)
	if err == nil {
		t.Fatal("model calibrated on another backbone was accepted")
	}
	for _, want := range []string{fx.sha, otherSHA} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name checksum %s", err, want)
		}
	}
}

// OpenCV DNN and ONNX Runtime must give the same scores for the same model:
// a site may switch runtime without recalibrating.
func TestRuntimesAgree(t *testing.T) {
	testenv.RequireORT(t)
	fx := calibrate(t, model.Flow)
	ort := inspector(t, fx.model, fx.ex, fx.sha)
	cv := inspector(t, fx.model, openExtractor(t, engine.OpenCV, fx.backbone, fx.model.Manifest.Features), fx.sha)
	imgs := append(goodImages(t, 3, heldSeed), defects(t)[:4]...)
	a, b := scores(t, ort, imgs, true), scores(t, cv, imgs, true)
	for i := range imgs {
		rel := math.Abs(a[i].Score-b[i].Score) / math.Max(math.Abs(a[i].Score), 1e-9)
		if rel > relTolCV {
			t.Errorf("image %d: ONNX Runtime %v, OpenCV %v (relative difference %.2g)", i, a[i].Score, b[i].Score, rel)
		}
		var num, den float64
		for p := range a[i].Heat {
			num = math.Max(num, math.Abs(float64(a[i].Heat[p]-b[i].Heat[p])))
			den = math.Max(den, math.Abs(float64(a[i].Heat[p])))
		}
		if num > relTolCV*math.Max(den, 1e-12) {
			t.Errorf("image %d: heatmaps differ by %.3g (peak %.3g)", i, num, den)
		}
	}
}

// Inspect, heatmaps and overlays run for every frame of a long-lived daemon:
// any Mat they fail to close is a leak that grows without bound.
func TestInspectNoLeakedMats(t *testing.T) {
	testenv.RequireORT(t)
	if liveMats() < 0 {
		t.Skip("build with -tags matprofile to count live Mats")
	}
	fx := calibrate(t, model.Gaussian)
	in := inspector(t, fx.model, fx.ex, fx.sha)
	roi := fx.model.Manifest
	roi.ROI = "8,8,80,80"
	cropped := inspector(t, model.FromTensors(roi, tensorsOf(fx.model)), fx.ex, fx.sha)
	img := synth.Good(1, imgSize)
	defer img.Close()
	before := liveMats()
	for _, ins := range []*pipeline.Inspector{in, cropped} {
		for range 3 {
			r, err := ins.Inspect(context.Background(), img, true)
			if err != nil {
				t.Fatal(err)
			}
			ov, err := ins.Overlay(img, r.Heat)
			if err != nil {
				t.Fatal(err)
			}
			ov.Close()
			if _, err := ins.Inspect(context.Background(), img, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A cancelled inspection and an image smaller than the ROI are error paths.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in.Inspect(ctx, img, true)
	small := synth.Good(2, 64)
	cropped.Inspect(context.Background(), small, true)
	small.Close()
	if after := liveMats(); after != before {
		t.Errorf("live Mats: %d before, %d after\n%s", before, after, matProfile())
	}
}

func tensorsOf(m *model.Model) []model.Tensor {
	var ts []model.Tensor
	for _, ti := range m.Manifest.Tensors {
		ts = append(ts, m.Tensors[ti.Name])
	}
	if len(ts) == 0 { // in-memory models have no table of tensors
		for _, t := range m.Tensors {
			ts = append(ts, t)
		}
	}
	return ts
}

// TestHeatBaselines checks the per-position reference of the heatmap: a part
// whose maps equal the stored good-part means gets no heat at all, while the
// pooled-mean fallback (models without baselines) does give it heat; badly
// shaped baselines are refused.
func TestHeatBaselines(t *testing.T) {
	testenv.RequireORT(t)
	fx := calibrate(t, model.Gaussian)
	fc := fx.model.Manifest.Features
	for s := range fc.Scales {
		for tp := range fc.Taps {
			tn, err := fx.model.Tensor(pipeline.BaselineTensor(s, tp))
			if err != nil {
				t.Fatalf("calibrated model lacks baseline: %v", err)
			}
			if len(tn.Shape) != 3 || tn.Shape[0] != fx.ex.Channels(tp) || tn.Shape[1] < 1 || tn.Shape[2] < 1 ||
				tn.Shape[0]*tn.Shape[1]*tn.Shape[2] != len(tn.Data) {
				t.Errorf("baseline %s has shape %v", tn.Name, tn.Shape)
			}
		}
	}
	part := goodImages(t, 1, heldSeed)[0]
	own, err := pipeline.Baselines(context.Background(), fx.ex, []gocv.Mat{part})
	if err != nil {
		t.Fatal(err)
	}
	withTensors := func(replace []model.Tensor, drop bool) *model.Model {
		ts := map[string]model.Tensor{}
		for k, v := range fx.model.Tensors {
			if drop && strings.HasPrefix(k, "heat.") {
				continue
			}
			ts[k] = v
		}
		for _, r := range replace {
			ts[r.Name] = r
		}
		return &model.Model{Manifest: fx.model.Manifest, Tensors: ts}
	}
	peak := func(m *model.Model) float32 {
		in := inspector(t, m, fx.ex, fx.sha)
		in.SetTransforms(1) // the untransformed view only
		r, err := in.Inspect(context.Background(), part, true)
		if err != nil {
			t.Fatal(err)
		}
		var p float32
		for _, v := range r.Heat {
			p = max(p, v)
		}
		return p
	}
	if p := peak(withTensors(own, false)); p > 1e-6 {
		t.Errorf("part equal to the baseline: heat peak %g, want 0", p)
	}
	if p := peak(withTensors(nil, true)); p <= 1e-6 {
		t.Errorf("pooled-mean fallback: heat peak %g, want the part's own structure to show", p)
	}
	bad := own[0]
	bad.Shape = []int{bad.Shape[0] + 1, bad.Shape[1], bad.Shape[2]}
	if _, err := pipeline.NewInspector(withTensors([]model.Tensor{bad}, false), fx.ex, fx.sha); err == nil || !strings.Contains(err.Error(), bad.Name) {
		t.Errorf("wrongly shaped baseline: error %v, want one naming %s", err, bad.Name)
	}
	partial := withTensors(nil, false)
	delete(partial.Tensors, own[0].Name)
	if _, err := pipeline.NewInspector(partial, fx.ex, fx.sha); err == nil {
		t.Error("model missing one baseline of several was accepted")
	}
}

// TestCalibrateChoosesTransforms: patch calibration judges every candidate
// set of transformations and the model uses the one it records as chosen;
// parts too small for a synthetic defect fall back to the first candidate
// instead of failing.
func TestCalibrateChoosesTransforms(t *testing.T) {
	testenv.RequireORT(t)
	cfg := testConfig(local.MethodPatchCore)
	cfg.Choose = calibration.Candidates() // --mode auto
	backbone, _ := tinyBackbone(t)
	ex := openExtractor(t, engine.ONNXRuntime, backbone, cfg.Features)
	for _, tc := range []struct {
		name   string
		size   int
		choice bool
	}{{"parts of 96 px", imgSize, true}, {"parts of 48 px", 48, false}} {
		t.Run(tc.name, func(t *testing.T) {
			var imgs []gocv.Mat
			var files []string
			for i := range nGood {
				g := synth.Good(int64(700+i), imgSize)
				if tc.size != imgSize {
					small := gocv.NewMat()
					gocv.Resize(g, &small, image.Pt(tc.size, tc.size), 0, 0, gocv.InterpolationArea)
					g.Close()
					g = small
				}
				imgs = append(imgs, g)
				files = append(files, fmt.Sprint(i))
			}
			defer func() {
				for _, m := range imgs {
					m.Close()
				}
			}()
			res, err := calibration.Calibrate(context.Background(), ex, backbone, imgs, files, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			man := res.Manifest
			ch := man.Training.Choice
			if !tc.choice {
				if ch != nil || man.Transforms != cfg.Choose[0].Transforms {
					t.Errorf("choice %+v, transforms %+v: want none recorded and the first candidate's", ch, man.Transforms)
				}
				return
			}
			if ch == nil || len(ch.Candidates) != len(cfg.Choose) || ch.Probes != 2*nGood {
				t.Fatalf("choice %+v: want %d candidates judged on %d probes", ch, len(cfg.Choose), 2*nGood)
			}
			for _, c := range cfg.Choose {
				if c.Name == ch.Chosen {
					if man.Transforms != c.Transforms || man.TestTransforms != 1 {
						t.Errorf("chose %s, model has transforms %+v, T=%d", c.Name, man.Transforms, man.TestTransforms)
					}
					return
				}
			}
			t.Errorf("chose %q, not a candidate", ch.Chosen)
		})
	}
}

// TestOffShapeFlagged: a part whose aspect ratio lies far outside the good
// parts' is scored all the same and says so; a part of the good parts'
// shape is not flagged, resized or not.
func TestOffShapeFlagged(t *testing.T) {
	for _, method := range []model.Method{local.MethodPatchCore, model.Gaussian} {
		t.Run(string(method), func(t *testing.T) {
			fx := calibrate(t, method)
			if s := fx.model.Manifest.Training.Shape; s == nil || s.AspectMin != 1 || s.AspectMax != 1 {
				t.Fatalf("square good parts recorded as %+v", s)
			}
			in := inspector(t, fx.model, fx.ex, fx.sha)
			good := goodImages(t, 1, goodSeed+100)[0]
			larger := imageops.Resize(good, 2*imgSize, 2*imgSize)
			defer larger.Close()
			wide := imageops.Resize(good, 2*imgSize, imgSize)
			defer wide.Close()
			for _, c := range []struct {
				name string
				img  gocv.Mat
				off  bool
			}{{"good", good, false}, {"larger, same shape", larger, false}, {"twice as wide", wide, true}} {
				r, err := in.Inspect(context.Background(), c.img, false)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if (r.OffShape != "") != c.off {
					t.Errorf("%s: off shape %q, want %v", c.name, r.OffShape, c.off)
				}
				if math.IsNaN(r.Score) || math.IsInf(r.Score, 0) {
					t.Errorf("%s: score %v", c.name, r.Score)
				}
			}
		})
	}
}
