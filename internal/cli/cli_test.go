package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/evaluation"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/internal/testenv"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/pipeline"
	"github.com/inspectd/inspectd/synth"
)

// The synthetic set: sizes as on a line (224 px parts, 16 good to calibrate),
// small enough that the end-to-end run fits the CI budget on two cores.
const (
	dataSize      = 224
	dataTrain     = 16
	dataTestGood  = 12
	dataPerKind   = 6
	dataSeed      = 11
	minImageAUROC = 0.95
	// Share of defects whose heatmap peak must fall on the defect's mask.
	minPeakInMask = 0.5
)

// realBackbone points the commands at the pretrained backbone and ONNX
// Runtime, skipping when they are absent.
func realBackbone(t *testing.T) {
	t.Helper()
	t.Setenv("INSPECTD_BACKBONE", testenv.RequireBackbone(t))
	t.Setenv("INSPECTD_ORT_LIB", testenv.RequireORT(t))
	t.Setenv("INSPECTD_RUNTIME", "onnxruntime")
	t.Setenv("INSPECTD_THREADS", "2")
}

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	start := time.Now()
	code = Main(args, &o, &e)
	t.Logf("inspectd %s: exit %d in %.1f s", args[0], code, time.Since(start).Seconds())
	return code, o.String(), e.String()
}

func readSummary(t *testing.T, dir string) evaluation.Summary {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s evaluation.Summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("summary.json: %v", err)
	}
	return s
}

// TestEndToEnd calibrates and evaluates both densities on a synthetic
// category with the real backbone, then scores with the saved model.
func TestEndToEnd(t *testing.T) {
	realBackbone(t)
	data := filepath.Join(t.TempDir(), "flange")
	start := time.Now()
	if err := synth.WriteDataset(data, dataTrain, dataTestGood, dataPerKind, dataSize, dataSeed); err != nil {
		t.Fatal(err)
	}
	t.Logf("data set written in %.1f s", time.Since(start).Seconds())
	def := calibration.Defaults().Method

	// Outputs live in the parent's folder: the model outlives its subtest.
	outs := t.TempDir()
	models := map[model.Method]string{}
	// pick prefers the default method's model; running a single eval subtest
	// (-run) still checks heatmaps and scoring with the other one.
	pick := func(t *testing.T) string {
		if p := models[def]; p != "" {
			return p
		}
		for _, p := range models {
			return p
		}
		t.Skip("no model from eval")
		return ""
	}
	// Both densities from one eval: one extraction of the good parts'
	// features and of the test images' features serves both.
	t.Run("eval", func(t *testing.T) {
		code, stdout, stderr := run(t, "eval", "--data", data, "--train-limit", fmt.Sprint(dataTrain),
			"--out", outs, "--method", "gaussian,flow", "--sweep-t", "1,2,8")
		if code != 0 {
			t.Fatalf("eval exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		for _, method := range []model.Method{model.Gaussian, model.Flow} {
			out := filepath.Join(outs, string(method))
			s := readSummary(t, out)
			t.Logf("%s: image AUROC %.4f per class %v by T %v pixel AUROC %v threshold %.4g FRR %.3f recall %.3f calibrate %.1f s, %.0f ms/image",
				method, s.ImageAUROC, s.PerClass, s.ByT, deref(s.PixelAUROC), s.Threshold, s.FalseRejectRate, s.DefectRecall, s.CalibrateSec, s.MsPerImage)
			if s.Method != method || s.TrainImages != dataTrain {
				t.Errorf("summary says method %s on %d images; asked for %s on %d", s.Method, s.TrainImages, method, dataTrain)
			}
			if want := dataTestGood + dataPerKind*len(synth.Kinds); sumCounts(s.Counts) != want {
				t.Errorf("summary counts %v, want %d test images", s.Counts, want)
			}
			if s.PixelAUROC == nil || !(*s.PixelAUROC > 0.5 && *s.PixelAUROC <= 1) {
				t.Errorf("pixel AUROC %v: want reported and better than chance", deref(s.PixelAUROC))
			}
			if method == def && s.ImageAUROC < minImageAUROC {
				t.Errorf("default method %s: image AUROC %.4f below %.2f", method, s.ImageAUROC, minImageAUROC)
			}
			// The sweep scores the same extraction at other T; T=8 is
			// also the T under evaluation, so its AUROC is the headline's.
			for _, T := range []int{1, 2, 8} {
				if a, ok := s.ByT[T]; !ok || !(a > 0.5 && a <= 1) {
					t.Errorf("%s: AUROC at T=%d is %v (present %v), want better than chance", method, T, a, ok)
				}
			}
			if s.ByT[8] != s.ImageAUROC {
				t.Errorf("%s: AUROC at T=8 %v in the sweep, %v as the headline at T=8", method, s.ByT[8], s.ImageAUROC)
			}
			if s.MsPerImage <= 0 {
				t.Errorf("%s: time per image %v not measured", method, s.MsPerImage)
			}
			for _, f := range []string{"model.zip", "scores.csv", "roc.png", "histogram.png"} {
				if _, err := os.Stat(filepath.Join(out, f)); err != nil {
					t.Errorf("eval did not write %s: %v", f, err)
				}
			}
			models[method] = filepath.Join(out, "model.zip")
		}
	})

	t.Run("heat-peak-in-mask", func(t *testing.T) {
		mpath := pick(t)
		in, closeFn, err := openModel(mpath)
		if err != nil {
			t.Fatal(err)
		}
		defer closeFn()
		inside, total := 0, 0
		var dists []float64
		for _, k := range synth.Kinds {
			for i := range dataPerKind {
				name := fmt.Sprintf("%03d", i)
				d := peakDistance(t, in, filepath.Join(data, "test", string(k), name+".png"),
					filepath.Join(data, "ground_truth", string(k), name+"_mask.png"))
				dists = append(dists, d)
				total++
				if d == 0 {
					inside++
				}
			}
		}
		sort.Float64s(dists)
		t.Logf("heat peak on the mask for %d of %d defects; distances to the mask (px) %v", inside, total, dists)
		if frac := float64(inside) / float64(total); frac < minPeakInMask {
			t.Errorf("heat peak on the defect for %d of %d defects (%.0f%%), want at least %.0f%%", inside, total, 100*frac, 100*minPeakInMask)
		}
	})

	t.Run("score", func(t *testing.T) {
		mpath := pick(t)
		images := []string{
			filepath.Join(data, "test", "good", "000.png"), filepath.Join(data, "test", "good", "001.png"),
			filepath.Join(data, "test", string(synth.Hole), "000.png"), filepath.Join(data, "test", string(synth.Stain), "000.png"),
		}
		heat := filepath.Join(t.TempDir(), "heat")
		code, stdout, stderr := run(t, append([]string{"score", "--model", mpath, "--heatmap", heat}, images...)...)
		if code != 0 {
			t.Fatalf("score exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		lines := jsonLines(t, stdout)
		if len(lines) != len(images) {
			t.Fatalf("%d JSON lines for %d images:\n%s", len(lines), len(images), stdout)
		}
		for i, l := range lines {
			t.Logf("%s: score %.4g threshold %.4g %s, %.0f ms", filepath.Base(filepath.Dir(l.Image)), l.Score, l.Threshold, l.Verdict, l.Millis)
			if l.Image != images[i] || l.Error != "" {
				t.Errorf("line %d: image %q error %q, want %q and no error", i, l.Image, l.Error, images[i])
			}
			want := "ok"
			if l.Score > l.Threshold {
				want = "defect"
			}
			if l.Verdict != want || math.IsNaN(l.Score) || l.Threshold <= 0 {
				t.Errorf("line %d: verdict %q for score %v at threshold %v, want %q", i, l.Verdict, l.Score, l.Threshold, want)
			}
			if st, err := os.Stat(l.Heatmap); err != nil || st.Size() == 0 {
				t.Errorf("line %d: heatmap %q not written: %v", i, l.Heatmap, err)
			}
		}
	})
}

// peakDistance is how far (pixels) the heatmap's peak lies from the defect's
// mask, compared at the mask's resolution as eval's pixel AUROC does; 0 is on it.
func peakDistance(t *testing.T, in *pipeline.Inspector, imgPath, maskPath string) float64 {
	t.Helper()
	img, err := imageops.ReadFile(imgPath)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	res, err := in.Inspect(context.Background(), img, true)
	if err != nil {
		t.Fatal(err)
	}
	mask := gocv.IMRead(maskPath, gocv.IMReadGrayScale)
	if mask.Empty() {
		t.Fatalf("cannot read %s", maskPath)
	}
	defer mask.Close()
	h, w := mask.Rows(), mask.Cols()
	heat := imageops.ResizeMap(res.Heat, pipeline.HeatSize, pipeline.HeatSize, h, w)
	best := 0
	for p, v := range heat {
		if v > heat[best] {
			best = p
		}
	}
	mb := mask.ToBytes()
	px, py := best%w, best/w
	d := math.Inf(1)
	for p, v := range mb {
		if v > 127 {
			d = math.Min(d, math.Hypot(float64(p%w-px), float64(p/w-py)))
		}
	}
	return d
}

func jsonLines(t *testing.T, s string) []ScoreLine {
	t.Helper()
	var out []ScoreLine
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var l ScoreLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("not a JSON line: %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

func sumCounts(c map[string]int) int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

func deref(p *float64) any {
	if p == nil {
		return "missing"
	}
	return *p
}

// TestCalibrateTooFewImages needs no backbone: images are read first, and a
// folder that cannot make a model must be refused naming the files at fault.
func TestCalibrateTooFewImages(t *testing.T) {
	good := t.TempDir()
	nGood := calibration.MinImages - 2
	for i := range nGood {
		m := synth.Good(int64(i), 64)
		b, err := imageops.EncodePNG(m)
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(good, fmt.Sprintf("%02d.png", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bad := []string{"truncated.png", "notanimage.jpg"}
	os.WriteFile(filepath.Join(good, bad[0]), []byte("\x89PNG\r\n\x1a\n\x00\x00"), 0o644)
	os.WriteFile(filepath.Join(good, bad[1]), []byte("hello"), 0o644)
	out := filepath.Join(t.TempDir(), "model.zip")
	code, stdout, stderr := run(t, "calibrate", "--good", good, "--out", out)
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range append([]string{fmt.Sprintf("at least %d", calibration.MinImages), fmt.Sprintf("got %d", nGood)}, bad...) {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not mention %q:\n%s", want, stderr)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a model was written")
	}
}

// TestScoreBadModel needs no backbone: the model file is checked first.
func TestScoreBadModel(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "part.png")
	m := synth.Good(1, 64)
	b, err := imageops.EncodePNG(m)
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(img, b, 0o644)

	// A real model with one weight flipped: the zip is intact, the checksum is not.
	damaged := filepath.Join(dir, "damaged.zip")
	man := model.Manifest{Method: model.Gaussian}
	if err := model.Save(damaged, man, []model.Tensor{{Name: "x", Shape: []int{4}, Data: []float32{1, 2, 3, 4}}}); err != nil {
		t.Fatal(err)
	}
	zb, _ := os.ReadFile(damaged)
	i := bytes.Index(zb, []byte{0, 0, 0x80, 0x3f}) // float32 1.0, stored uncompressed
	if i < 0 {
		t.Fatal("weights not found in the zip")
	}
	zb[i+3] = 0x40
	os.WriteFile(damaged, zb, 0o644)
	garbage := filepath.Join(dir, "garbage.zip")
	os.WriteFile(garbage, []byte("this is not a zip file"), 0o644)

	cases := []struct{ name, path, want string }{
		{"garbage", garbage, "not a usable inspectd model"},
		{"damaged", damaged, "checksum"},
		{"missing", filepath.Join(dir, "nope.zip"), "does not exist"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := run(t, "score", "--model", c.path, img)
			if code != 1 || stdout != "" {
				t.Errorf("exit %d, stdout %q; want 1 and nothing", code, stdout)
			}
			if !strings.Contains(stderr, c.path) || !strings.Contains(stderr, c.want) {
				t.Errorf("stderr does not name %s and %q:\n%s", c.path, c.want, stderr)
			}
		})
	}
}

// interruptOnWrite sends the process SIGINT the first time the command
// writes text containing trigger, i.e. while Main is busy and its signal
// handler is installed.
type interruptOnWrite struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	trigger string
	sent    bool
}

func (w *interruptOnWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.sent && strings.Contains(w.buf.String(), w.trigger) {
		w.sent = true
		syscall.Kill(os.Getpid(), syscall.SIGINT)
	}
	return len(p), nil
}

// TestCalibrateInterrupted presses Ctrl-C during calibration: the command
// must exit 130 and leave neither the model nor a temporary file.
func TestCalibrateInterrupted(t *testing.T) {
	realBackbone(t)
	good := filepath.Join(t.TempDir(), "set")
	if err := synth.WriteDataset(good, calibration.MinImages, 0, 0, 96, 1); err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	out := filepath.Join(outDir, "model.zip")
	stderr := &interruptOnWrite{trigger: "features"}
	var stdout bytes.Buffer
	code := Main([]string{"calibrate", "--good", filepath.Join(good, "train", "good"), "--out", out}, &stdout, stderr)
	if !stderr.sent {
		t.Fatalf("calibration never reported progress, so no interrupt was sent (exit %d)\n%s", code, stderr.buf.String())
	}
	if code != 130 || !strings.Contains(stderr.buf.String(), "interrupted") {
		t.Errorf("exit %d, want 130 with 'interrupted'\nstderr:\n%s", code, stderr.buf.String())
	}
	left, _ := os.ReadDir(outDir)
	for _, e := range left {
		t.Errorf("left %s in the output folder", e.Name())
	}
}

// TestEndToEndPatchCore evaluates the default patch method on small
// synthetic defects drawn on real solar cells (../shared), with the real
// ResNet-50 v2 trunk: detection, localisation, the operating-point report
// and scoring with the saved model.
func TestEndToEndPatchCore(t *testing.T) {
	realBackbone(t)
	cells := filepath.Join(testenv.SharedDir(), "datasets", "elpv_mono", "train", "good")
	if _, err := os.Stat(cells); err != nil {
		testenv.Skip(t, "real good images %s not found: skipping", cells)
	}
	files, err := calibration.Images([]string{cells}, 0)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "cells")
	if err := synth.WriteDatasetOnReal(data, files, 16, 16, 6, 3); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	code, stdout, stderr := run(t, "eval", "--data", data, "--method", "patchcore", "--mode", "auto", "--out", out)
	if code != 0 {
		t.Fatalf("eval exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	t.Logf("eval:\n%s", stdout)
	s := readSummary(t, out)
	if s.Method != "patchcore" || s.ImageAUROC < 0.8 {
		t.Errorf("%s: image AUROC %.4f, want patchcore >= 0.8", s.Method, s.ImageAUROC)
	}
	if s.PixelAUROC == nil || *s.PixelAUROC < 0.9 {
		t.Errorf("pixel AUROC %v, want >= 0.9", deref(s.PixelAUROC))
	}
	if s.PeakInMask == nil || *s.PeakInMask < 0.3 {
		t.Errorf("heat peak on the mask for %v of defects, want >= 0.3", s.PeakInMask)
	}
	if len(s.Operating) != 3 || s.Operating[0].TargetFRR != 0.01 {
		t.Errorf("operating points %+v: want the calibrated 1%% and the table's 2%% and 5%%", s.Operating)
	}
	for i, op := range s.Operating {
		if !(op.PredictedLow <= op.PredictedFRR && op.PredictedFRR <= op.PredictedHi) || (i > 0 && op.Threshold >= s.Operating[i-1].Threshold) {
			t.Errorf("operating point %+v: band or order wrong", op)
		}
	}
	if len(s.Line) == 0 || len(s.Line[0].Checkpoints) == 0 {
		t.Errorf("no simulated line in the summary")
	}
	m, err := model.Load(filepath.Join(out, "model.zip"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Manifest.Backbone.File != "resnet50v2_s16.onnx" || !m.Manifest.Features.Aspect || len(m.Manifest.Threshold.Table) != len(calibration.TableFRRs) {
		t.Errorf("manifest backbone %s aspect %v table %v", m.Manifest.Backbone.File, m.Manifest.Features.Aspect, m.Manifest.Threshold.Table)
	}
	// score with INSPECTD_BACKBONE still naming MobileNetV2: the model's
	// backbone is found by its file name beside it.
	img := filepath.Join(data, "test", "crack", "000.png")
	code, stdout, stderr = run(t, "score", "--model", filepath.Join(out, "model.zip"), img)
	if code != 0 {
		t.Fatalf("score exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	lines := jsonLines(t, stdout)
	if len(lines) != 1 || lines[0].Threshold != m.Manifest.Threshold.Value || math.IsNaN(lines[0].Score) {
		t.Errorf("score output %+v", lines)
	}
	// The transformations were chosen on the good parts, with the evidence
	// recorded and the chosen set the one the model uses.
	ch := m.Manifest.Training.Choice
	if ch == nil || len(ch.Candidates) != len(calibration.Candidates()) || ch.Probes != 32 {
		t.Fatalf("transform choice %+v: want every candidate judged on 32 probes", ch)
	}
	for _, c := range calibration.Candidates() {
		if c.Name == ch.Chosen && c.Transforms != m.Manifest.Transforms {
			t.Errorf("chose %s but the model uses transforms %+v", ch.Chosen, m.Manifest.Transforms)
		}
	}

	// An operator confirms a good part the model scores highest: it joins
	// the bank as a new model version, the old one kept for rollback, and
	// scores lower afterwards.
	goods, err := calibration.Images([]string{filepath.Join(data, "test", "good")}, 0)
	if err != nil {
		t.Fatal(err)
	}
	modelPath := filepath.Join(out, "model.zip")
	code, stdout, stderr = run(t, append([]string{"score", "--model", modelPath}, goods...)...)
	if code != 0 {
		t.Fatalf("score exit %d: %s", code, stderr)
	}
	worst := jsonLines(t, stdout)[0]
	for _, l := range jsonLines(t, stdout) {
		if l.Score > worst.Score {
			worst = l
		}
	}
	code, stdout, stderr = run(t, "add-good", "--model", modelPath, worst.Image)
	if code != 0 {
		t.Fatalf("add-good exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	t.Logf("add-good: %s", stdout)
	nm, err := model.Load(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := model.Load(modelPath + model.PrevSuffix)
	if err != nil {
		t.Fatalf("previous version not kept: %v", err)
	}
	if prev.Manifest.ID != m.Manifest.ID || nm.Manifest.Training.Parent != m.Manifest.ID || nm.Manifest.Training.ConfirmedGood != 1 || nm.Manifest.ID == m.Manifest.ID {
		t.Errorf("versions: prev %s, new %s from %s with %d confirmed; want prev %s", prev.Manifest.ID, nm.Manifest.ID,
			nm.Manifest.Training.Parent, nm.Manifest.Training.ConfirmedGood, m.Manifest.ID)
	}
	code, stdout, stderr = run(t, "score", "--model", modelPath, worst.Image)
	if code != 0 {
		t.Fatalf("score exit %d: %s", code, stderr)
	}
	if again := jsonLines(t, stdout)[0]; !(again.Score < worst.Score) || again.Threshold != worst.Threshold {
		t.Errorf("confirmed-good part scored %v (threshold %v) after joining the bank, %v (%v) before", again.Score, again.Threshold, worst.Score, worst.Threshold)
	}
	// A model that is not there: refused.
	if code, _, stderr = run(t, "add-good", "--model", filepath.Join(t.TempDir(), "missing.zip"), worst.Image); code == 0 {
		t.Errorf("add-good on a missing model succeeded: %s", stderr)
	}
}
