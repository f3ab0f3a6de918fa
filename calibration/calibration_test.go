package calibration_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/engine"
	"github.com/inspectd/inspectd/engine/tiny"
	"github.com/inspectd/inspectd/evalstats"
	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/internal/testenv"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/synth"
)

func TestDefaultsValidForEveryMethod(t *testing.T) {
	if err := calibration.Defaults().Validate(); err != nil {
		t.Errorf("Defaults(): %v", err)
	}
	for _, m := range calibration.Methods() {
		if err := calibration.DefaultsFor(model.Method(m)).Validate(); err != nil {
			t.Errorf("DefaultsFor(%s): %v", m, err)
		}
	}
}

// TestValidateLimits walks every limit Validate enforces, each just inside
// and just outside, so a limit that moves or disappears fails here.
func TestValidateLimits(t *testing.T) {
	flow := calibration.Defaults
	patch := func() calibration.Config { return calibration.DefaultsFor(calibration.DefaultMethod) }
	for _, tc := range []struct {
		name    string
		base    func() calibration.Config
		edit    func(*calibration.Config)
		wantErr string // empty: valid
	}{
		{"one train view", flow, func(c *calibration.Config) { c.TrainViews = 1 }, ""},
		{"no train views", flow, func(c *calibration.Config) { c.TrainViews = 0 }, "train views 0"},
		{"one test view", flow, func(c *calibration.Config) { c.TestViews = 1 }, ""},
		{"no test views", flow, func(c *calibration.Config) { c.TestViews = 0 }, "test transforms 0"},
		{"unknown method", flow, func(c *calibration.Config) { c.Method = "knn" }, `method "knn" must be one of`},
		{"target FRR 0", flow, func(c *calibration.Config) { c.TargetFRR = 0 }, ""},
		{"target FRR just under 0.5", flow, func(c *calibration.Config) { c.TargetFRR = 0.499 }, ""},
		{"target FRR 0.5", flow, func(c *calibration.Config) { c.TargetFRR = 0.5 }, "target false-reject rate 0.5"},
		{"negative target FRR", flow, func(c *calibration.Config) { c.TargetFRR = -0.01 }, "target false-reject rate -0.01"},
		{"two folds", flow, func(c *calibration.Config) { c.Folds = 2 }, ""},
		{"one fold", flow, func(c *calibration.Config) { c.Folds = 1 }, "folds 1 must be >= 2"},
		{"flow without blocks", flow, func(c *calibration.Config) { c.Flow.Blocks = 0 }, "blocks/hidden/depth 0/128/1"},
		{"flow without epochs", flow, func(c *calibration.Config) { c.MaxEpochs = 0 }, "epochs 0 and batch 64"},
		{"flow without batch", flow, func(c *calibration.Config) { c.Batch = 0 }, "epochs 60 and batch 0"},
		{"flow learning rate 0", flow, func(c *calibration.Config) { c.LR = 0 }, "learning rate 0"},
		{"gaussian ignores the flow's shape", flow, func(c *calibration.Config) { c.Method, c.Flow.Blocks, c.LR = model.Gaussian, 0, 0 }, ""},
		{"bad features", flow, func(c *calibration.Config) { c.Features.Scales = []int{16} }, "scale 16 outside 32..2048"},
		{"bad transforms", flow, func(c *calibration.Config) { c.Transforms.MaxAngle = 200 }, "max angle 200"},
		{"patch method at two scales", patch, func(c *calibration.Config) { c.Features.Scales = []int{256, 128} }, "works at one scale"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.base()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestImagesLimit: directories give their image files sorted, other files
// and hidden ones are left out, and a limit spreads its picks over the list
// (index i*n/limit) instead of taking the first files of one batch.
func TestImagesLimit(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := range 10 {
		name := filepath.Join(dir, fmt.Sprintf("%02d.png", i))
		want = append(want, name)
		if err := os.WriteFile(name, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, other := range []string{"notes.txt", ".hidden.png"} {
		if err := os.WriteFile(filepath.Join(dir, other), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		limit int
		want  []int // indexes into want
	}{
		{0, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{10, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{20, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{4, []int{0, 2, 5, 7}},
		{3, []int{0, 3, 6}},
		{1, []int{0}},
	} {
		got, err := calibration.Images([]string{dir}, tc.limit)
		if err != nil {
			t.Fatalf("limit %d: %v", tc.limit, err)
		}
		var w []string
		for _, i := range tc.want {
			w = append(w, want[i])
		}
		if !slices.Equal(got, w) {
			t.Errorf("limit %d: got %v, want %v", tc.limit, got, w)
		}
	}
	if _, err := calibration.Images([]string{filepath.Join(dir, "absent")}, 0); err == nil {
		t.Error("a missing path gave no error")
	}
	empty := t.TempDir()
	if _, err := calibration.Images([]string{empty}, 0); err == nil || !strings.Contains(err.Error(), "no PNG, JPEG or BMP files") {
		t.Errorf("an empty folder: err = %v, want one saying it has no images", err)
	}
}

// TestLoadImagesMinimum: fewer than MinImages readable images is an error
// naming the count and the unusable file; the ROI crops every image.
func TestLoadImagesMinimum(t *testing.T) {
	dir := t.TempDir()
	files := writeGood(t, dir, calibration.MinImages)
	broken := filepath.Join(dir, "broken.png")
	if err := os.WriteFile(broken, []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}

	mats, used, err := calibration.LoadImages(append(files, broken), "4,8,32,16", calibration.DefaultImageMemory)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mats {
		if m.Cols() != 32 || m.Rows() != 16 {
			t.Errorf("cropped image is %dx%d, want 32x16", m.Cols(), m.Rows())
		}
		m.Close()
	}
	if !slices.Equal(used, files) {
		t.Errorf("used %v, want %v (the broken file skipped)", used, files)
	}

	_, _, err = calibration.LoadImages(append(files[:calibration.MinImages-1], broken), "", calibration.DefaultImageMemory)
	want := fmt.Sprintf("at least %d readable good images, got %d", calibration.MinImages, calibration.MinImages-1)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "broken.png") {
		t.Errorf("one image short: err = %v, want one containing %q and naming broken.png", err, want)
	}
	if _, _, err := calibration.LoadImages(files, "0,0,0,5", calibration.DefaultImageMemory); err == nil {
		t.Error("an empty ROI gave no error")
	}
}

// writeGood writes n synthetic good parts of 64 x 64 pixels as PNG files.
func writeGood(t *testing.T, dir string, n int) []string {
	t.Helper()
	files := make([]string, n)
	for i := range files {
		m := synth.Good(int64(i), 64)
		png, err := imageops.EncodePNG(m)
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		files[i] = filepath.Join(dir, fmt.Sprintf("%d.png", i))
		if err := os.WriteFile(files[i], png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// TestLoadImagesMemory: the decoded images are bounded in total, not only
// one by one; the refusal says how many images it got to and what to change.
func TestLoadImagesMemory(t *testing.T) {
	files := writeGood(t, t.TempDir(), calibration.MinImages+2) // 64 x 64 x 3 bytes each, decoded
	const each = 64 * 64 * 3
	for _, tc := range []struct {
		name   string
		roi    string
		memory int64
		want   string // "" loads every image
	}{
		{"all fit exactly", "", each * int64(len(files)), ""},
		{"one byte short", "", each*int64(len(files)) - 1, fmt.Sprintf("%d decoded images hold", len(files))},
		{"a few fit", "", 3 * each, "4 decoded images hold"},
		{"cropped images are what counts", "0,0,32,32", each * int64(len(files)) / 4, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mats, used, err := calibration.LoadImages(files, tc.roi, tc.memory)
			defer imageops.CloseAll(mats)
			if tc.want == "" {
				if err != nil || len(used) != len(files) {
					t.Fatalf("loaded %d of %d, err = %v", len(used), len(files), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--train-limit") {
				t.Errorf("err = %v, want one containing %q and naming --train-limit", err, tc.want)
			}
			if mats != nil {
				t.Errorf("refused, yet %d images returned", len(mats))
			}
		})
	}
	c := calibration.Defaults()
	c.ImageMemory = 1000
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "image memory") {
		t.Errorf("image memory of 1000 bytes: %v, want an error", err)
	}
}

// tinyExtractor runs the tiny test network (no pretrained weights) on ONNX
// Runtime.
func tinyExtractor(t *testing.T) (*features.Extractor, string) {
	t.Helper()
	return tinyExtractorAt(t, []int{64, 32}, false)
}

// tinyExtractorAt is tinyExtractor at other sizes, optionally aspect-true
// (short side = scale, rounded to the tiny network's stride of 4).
func tinyExtractorAt(t *testing.T, scales []int, aspect bool) (*features.Extractor, string) {
	t.Helper()
	lib := testenv.RequireORT(t)
	backbone := filepath.Join(t.TempDir(), "tiny.onnx")
	if err := tiny.WriteFile(backbone, 3); err != nil {
		t.Fatal(err)
	}
	fc := features.Config{Taps: []string{tiny.Tap1, tiny.Tap2}, Scales: scales, Mean: features.ImageNetMean, Std: features.ImageNetStd}
	if aspect {
		fc.Aspect, fc.Stride = true, 4
	}
	rt, err := engine.Open(engine.Options{Kind: engine.ONNXRuntime, Model: backbone, Outputs: fc.Taps, Library: lib})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	ex, err := features.New(rt, fc, 8)
	if err != nil {
		t.Fatal(err)
	}
	return ex, backbone
}

// TestThresholdFromFolds calibrates the Gaussian on synthetic good parts
// with each threshold method and checks what the manifest says about the
// k-fold threshold against the good scores it records.
func TestThresholdFromFolds(t *testing.T) {
	ex, backbone := tinyExtractor(t)
	const n = 12
	var imgs []gocv.Mat
	var names []string
	for i := range n {
		imgs = append(imgs, synth.Good(int64(100+i), 96))
		names = append(names, fmt.Sprint(i))
	}
	defer func() {
		for _, m := range imgs {
			m.Close()
		}
	}()
	cfg := calibration.Defaults()
	cfg.Features = ex.Config()
	cfg.Method, cfg.TrainViews, cfg.TestViews, cfg.Folds, cfg.TargetFRR = model.Gaussian, 2, 2, 4, 0.1
	ctx := context.Background()
	cache, err := calibration.BuildCache(ctx, ex, imgs, names, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	sha, err := model.FileSHA256(backbone)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		by   evalstats.ThresholdMethod
		want string // manifest method; empty: any resolved tail method
	}{
		{evalstats.MethodEmpirical, "kfold-empirical"},
		{evalstats.MethodGaussian, "kfold-gaussian"},
		{evalstats.MethodLogNormal, "kfold-lognormal"},
		{evalstats.MethodAuto, ""},
	} {
		t.Run(string(tc.by), func(t *testing.T) {
			c := cfg
			c.ThresholdBy = tc.by
			res, err := calibration.FromCache(ctx, ex, backbone, sha, cache, imgs, c, time.Now(), nil)
			if err != nil {
				t.Fatal(err)
			}
			th, tr := res.Manifest.Threshold, res.Manifest.Training
			switch {
			case tc.want != "" && th.Method != tc.want:
				t.Errorf("threshold method %q, want %q", th.Method, tc.want)
			case tc.want == "" && (!strings.HasPrefix(th.Method, "kfold-") || th.Method == "kfold-auto"):
				t.Errorf("threshold method %q, want kfold-<the method auto chose>", th.Method)
			}
			if th.Folds != 4 || th.Samples != n || len(tr.GoodScores) != n || tr.Images != n || tr.Vectors != n*2 {
				t.Errorf("folds %d, samples %d, good scores %d, images %d, vectors %d; want 4, %d, %d, %d, %d",
					th.Folds, th.Samples, len(tr.GoodScores), tr.Images, tr.Vectors, n, n, n, n*2)
			}
			if !slices.IsSorted(tr.GoodScores) {
				t.Errorf("good scores not sorted: %v", tr.GoodScores)
			}
			above := 0
			for _, s := range tr.GoodScores {
				if s > th.Value {
					above++
				}
			}
			if got := float64(above) / n; math.Abs(got-th.EmpiricalFRR) > 1e-12 {
				t.Errorf("empirical FRR %g recorded, but %d of %d good scores are above %g", th.EmpiricalFRR, above, n, th.Value)
			}
			if tc.by == evalstats.MethodEmpirical && th.EmpiricalFRR > c.TargetFRR {
				t.Errorf("empirical threshold %g rejects %g of the good parts, more than the target %g", th.Value, th.EmpiricalFRR, c.TargetFRR)
			}
			if th.PredictedFRR <= 0 || th.PredictedLow > th.PredictedFRR || th.PredictedHigh < th.PredictedFRR || len(th.Table) == 0 {
				t.Errorf("predicted FRR %g in [%g, %g] with %d table rows: want a band around a positive value and a table",
					th.PredictedFRR, th.PredictedLow, th.PredictedHigh, len(th.Table))
			}
		})
	}

	// Out of sample means out of sample: the folds' scores of the good
	// parts run higher than the scores of the density fitted on all of them.
	res, err := calibration.FromCache(ctx, ex, backbone, sha, cache, imgs, cfg, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	fit, err := calibration.Fit(ctx, cache.Train, n*cache.TrainViews, cache.Dim, cfg, cfg.Seed, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := fit.ScoreImages(cache.Test, n, cache.TestViews, cache.Dim)
	if mi, mo := mean(in), mean(res.Manifest.Training.GoodScores); !(mo > mi) {
		t.Errorf("mean out-of-fold score %g is not above the in-sample %g: the folds saw their own images", mo, mi)
	}
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
