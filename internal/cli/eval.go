package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/metrics"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/pipeline"
	"github.com/inspectd/inspectd/plots"
)

// EvalSummary is the JSON `inspectd eval` writes.
type EvalSummary struct {
	Data        string             `json:"data"`
	Model       string             `json:"model"`
	Method      model.Method       `json:"method"`
	TrainImages int                `json:"train_images"`
	Transforms  int                `json:"transforms"`
	ImageAUROC  float64            `json:"image_auroc"`
	PerClass    map[string]float64 `json:"image_auroc_per_class"`
	PixelAUROC  *float64           `json:"pixel_auroc,omitempty"`
	// PeakInMask is the share of defects with masks whose heatmap maximum
	// lies on the mask.
	PeakInMask *float64        `json:"heat_peak_in_mask,omitempty"`
	ByT        map[int]float64 `json:"image_auroc_by_t,omitempty"`
	Threshold  float64         `json:"threshold"`
	// At the calibrated threshold: share of good test parts rejected and of
	// defective parts caught.
	FalseRejectRate float64        `json:"false_reject_rate"`
	DefectRecall    float64        `json:"defect_recall"`
	CalibrateSec    float64        `json:"calibrate_seconds"`
	MsPerImage      float64        `json:"ms_per_image_median"`
	Counts          map[string]int `json:"counts"`
	Time            time.Time      `json:"time"`
}

type testImage struct {
	path, class, mask string
	score             float64
}

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval", "Usage: inspectd eval --data CATEGORY_DIR [flags]\n\nCalibrates on CATEGORY/train/good (or uses --model), scores CATEGORY/test/*, prints\nimage AUROC overall and per defect class, pixel AUROC where ground_truth masks exist,\nand writes summary.json, roc.png and histogram.png to --out.\n\nFlags:\n")
	data := fs.String("data", "", "category directory in MVTec AD layout")
	modelPath := fs.String("model", "", "use this model instead of calibrating")
	trainLimit := fs.Int("train-limit", 16, "good training images to calibrate on (0: all)")
	outDir := fs.String("out", "", "directory for summary.json and plots (default: out/eval-<category>)")
	sweep := fs.String("sweep-t", "", "also report image AUROC for these T (comma separated), e.g. 1,4,8,16,64")
	testLimit := fs.Int("test-limit", 0, "score at most N images per test class (0: all)")
	pixel := fs.Bool("pixel", true, "compute pixel AUROC where masks exist (needs heatmaps)")
	cfgFn := calibFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *data == "" {
		fs.Usage()
		return fmt.Errorf("%w: --data is required", errUsage)
	}
	cfg, err := cfgFn()
	if err != nil {
		return err
	}
	if *outDir == "" {
		*outDir = filepath.Join("out", "eval-"+filepath.Base(filepath.Clean(*data)))
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	tests, err := listTests(*data, *testLimit)
	if err != nil {
		return err
	}
	sum := EvalSummary{Data: *data, Time: time.Now().UTC(), Counts: map[string]int{}, PerClass: map[string]float64{}}

	mpath := *modelPath
	if mpath == "" {
		files, err := calibration.Images([]string{filepath.Join(*data, "train", "good")}, *trainLimit)
		if err != nil {
			return err
		}
		res, err := calibrateFiles(ctx, files, cfg, stderr)
		if err != nil {
			return err
		}
		mpath = filepath.Join(*outDir, "model.zip")
		if err := model.Save(mpath, res.Manifest, res.Tensors); err != nil {
			return err
		}
		sum.CalibrateSec = res.Manifest.Training.Seconds
	}
	in, closeFn, err := openModel(mpath)
	if err != nil {
		return err
	}
	defer closeFn()
	man := in.Manifest()
	sum.Model, sum.Method, sum.TrainImages, sum.Threshold = man.ID, man.Method, man.Training.Images, man.Threshold.Value
	if cfg.TestViews != man.TestTransforms {
		in.SetTransforms(cfg.TestViews)
	}
	sum.Transforms = cfg.TestViews

	var sweepT []int
	if *sweep != "" {
		if sweepT, err = intList(*sweep); err != nil {
			return fmt.Errorf("--sweep-t: %w", err)
		}
		sum.ByT = map[int]float64{}
	}
	sweepScores := map[int][]float64{}
	pix := metrics.NewAdaptivePixelAUROC(metrics.DefaultPixelBins)
	var peaks, peaksIn int
	var ms []float64
	for i := range tests {
		if err := ctx.Err(); err != nil {
			return err
		}
		t := &tests[i]
		img, err := imageops.ReadFile(t.path)
		if err != nil {
			return err
		}
		withHeat := *pixel && t.mask != ""
		res, err := in.Inspect(ctx, img, withHeat)
		if err == nil && withHeat {
			var onMask bool
			onMask, err = addPixels(pix, in, img, res.Heat, t.mask)
			if t.class != "good" {
				peaks++
				if onMask {
					peaksIn++
				}
			}
		}
		if err == nil && len(sweepT) > 0 {
			for _, T := range sweepT {
				var s float64
				s, err = scoreAtT(ctx, in, img, T)
				sweepScores[T] = append(sweepScores[T], s)
			}
			// Back to the T under evaluation before the next image.
			in.SetTransforms(cfg.TestViews)
		}
		img.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", t.path, err)
		}
		t.score = res.Score
		ms = append(ms, float64(res.Elapsed.Microseconds())/1000)
		if (i+1)%50 == 0 {
			fmt.Fprintf(stderr, "eval: scored %d/%d\n", i+1, len(tests))
		}
	}
	sum.MsPerImage = metrics.Median(ms)

	scores := make([]float64, len(tests))
	labels := make([]bool, len(tests))
	byClass := map[string][]float64{}
	var good []float64
	var rejected, caught, nDefect int
	for i, t := range tests {
		scores[i], labels[i] = t.score, t.class != "good"
		byClass[t.class] = append(byClass[t.class], t.score)
		sum.Counts[t.class]++
		if t.class == "good" {
			good = append(good, t.score)
			if t.score > sum.Threshold {
				rejected++
			}
		} else {
			nDefect++
			if t.score > sum.Threshold {
				caught++
			}
		}
	}
	if sum.ImageAUROC, err = metrics.AUROC(scores, labels); err != nil {
		return fmt.Errorf("image AUROC: %w", err)
	}
	sum.FalseRejectRate = float64(rejected) / float64(max(len(good), 1))
	sum.DefectRecall = float64(caught) / float64(max(nDefect, 1))
	for class, s := range byClass {
		if class == "good" {
			continue
		}
		cs := append(append([]float64(nil), good...), s...)
		cl := make([]bool, len(cs))
		for i := len(good); i < len(cs); i++ {
			cl[i] = true
		}
		if a, err := metrics.AUROC(cs, cl); err == nil {
			sum.PerClass[class] = a
		}
	}
	for _, T := range sweepT {
		if a, err := metrics.AUROC(sweepScores[T], labels); err == nil {
			sum.ByT[T] = a
		}
	}
	if peaks > 0 {
		f := float64(peaksIn) / float64(peaks)
		sum.PeakInMask = &f
	}
	if d, _ := pix.Counts(); d > 0 {
		if a, err := pix.AUROC(); err == nil {
			sum.PixelAUROC = &a
		}
	}
	if err := writeEvalOutputs(*outDir, sum, tests, scores, labels, byClass); err != nil {
		return err
	}
	printSummary(stdout, sum, *outDir)
	return nil
}

// scoreAtT scores img with T transformations (for the AUROC-against-T sweep).
func scoreAtT(ctx context.Context, in *pipeline.Inspector, img gocv.Mat, T int) (float64, error) {
	in.SetTransforms(T)
	r, err := in.Inspect(ctx, img, false)
	return r.Score, err
}

// addPixels compares the heatmap with the ground-truth mask at the mask's
// resolution (the part's, within the ROI) and reports whether the heatmap's
// maximum lies on the mask.
func addPixels(pix *metrics.PixelAUROC, in *pipeline.Inspector, img gocv.Mat, heat []float32, maskPath string) (bool, error) {
	mask := gocv.IMRead(maskPath, gocv.IMReadGrayScale)
	if mask.Empty() {
		return false, fmt.Errorf("cannot read mask %s", maskPath)
	}
	defer mask.Close()
	part, err := in.Part(img)
	if err != nil {
		return false, err
	}
	h, w := part.Rows(), part.Cols()
	part.Close()
	if mask.Rows() != h || mask.Cols() != w {
		return false, fmt.Errorf("mask %s is %dx%d; the part is %dx%d", maskPath, mask.Cols(), mask.Rows(), w, h)
	}
	full := imageops.ResizeMap(heat, pipeline.HeatSize, pipeline.HeatSize, h, w)
	mb := mask.ToBytes()
	m := make([]bool, len(mb))
	peak := 0
	for i, v := range mb {
		m[i] = v > 127
		if full[i] > full[peak] {
			peak = i
		}
	}
	return m[peak], pix.Add(full, m)
}

// listTests walks CATEGORY/test/<class>/* and pairs masks from
// CATEGORY/ground_truth/<class>/<name>_mask.png.
func listTests(dir string, limit int) ([]testImage, error) {
	classes, err := os.ReadDir(filepath.Join(dir, "test"))
	if err != nil {
		return nil, fmt.Errorf("data set %s: %w (want MVTec AD layout: test/<class>/...)", dir, err)
	}
	var out []testImage
	haveGood := false
	for _, c := range classes {
		if !c.IsDir() {
			continue
		}
		files, err := calibration.Images([]string{filepath.Join(dir, "test", c.Name())}, limit)
		if err != nil {
			continue
		}
		haveGood = haveGood || c.Name() == "good"
		for _, f := range files {
			t := testImage{path: f, class: c.Name()}
			base := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
			m := filepath.Join(dir, "ground_truth", c.Name(), base+"_mask.png")
			if _, err := os.Stat(m); err == nil {
				t.mask = m
			}
			out = append(out, t)
		}
	}
	if !haveGood || len(out) == 0 {
		return nil, fmt.Errorf("data set %s: needs test/good and at least one defect class", dir)
	}
	return out, nil
}

func writeEvalOutputs(dir string, sum EvalSummary, tests []testImage, scores []float64, labels []bool, byClass map[string][]float64) error {
	var csv strings.Builder
	csv.WriteString("image,class,score\n")
	for _, t := range tests {
		fmt.Fprintf(&csv, "%s,%s,%.6g\n", t.path, t.class, t.score)
	}
	if err := imageops.WriteFileAtomic(filepath.Join(dir, "scores.csv"), []byte(csv.String())); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(sum, "", "  ")
	if err := imageops.WriteFileAtomic(filepath.Join(dir, "summary.json"), append(js, '\n')); err != nil {
		return err
	}
	roc, err := metrics.ROC(scores, labels)
	if err != nil {
		return err
	}
	title := fmt.Sprintf("%s (%s, %d train images, T=%d)", filepath.Base(sum.Data), sum.Method, sum.TrainImages, sum.Transforms)
	if err := plots.ROCPNG(filepath.Join(dir, "roc.png"), []plots.Curve{{Name: "all defects", Points: roc}}, title); err != nil {
		return err
	}
	var groups []plots.Group
	names := make([]string, 0, len(byClass))
	for k := range byClass {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] == "good" || (names[j] != "good" && names[i] < names[j]) })
	for _, k := range names {
		groups = append(groups, plots.Group{Name: k, Scores: byClass[k]})
	}
	return plots.HistogramPNG(filepath.Join(dir, "histogram.png"), groups, sum.Threshold, title)
}

func printSummary(w io.Writer, s EvalSummary, dir string) {
	fmt.Fprintf(w, "%s: image AUROC %.4f (%s, %d train images, T=%d)\n", s.Data, s.ImageAUROC, s.Method, s.TrainImages, s.Transforms)
	classes := make([]string, 0, len(s.PerClass))
	for c := range s.PerClass {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for _, c := range classes {
		fmt.Fprintf(w, "  %-12s AUROC %.4f (%d images)\n", c, s.PerClass[c], s.Counts[c])
	}
	if s.PixelAUROC != nil {
		fmt.Fprintf(w, "  pixel AUROC %.4f\n", *s.PixelAUROC)
	}
	if s.PeakInMask != nil {
		fmt.Fprintf(w, "  heatmap peak on the defect mask for %.0f%% of defects\n", 100**s.PeakInMask)
	}
	Ts := make([]int, 0, len(s.ByT))
	for t := range s.ByT {
		Ts = append(Ts, t)
	}
	sort.Ints(Ts)
	for _, t := range Ts {
		fmt.Fprintf(w, "  T=%-3d image AUROC %.4f\n", t, s.ByT[t])
	}
	fmt.Fprintf(w, "  threshold %.4g: false rejects %.1f%% of good, catches %.1f%% of defects; %.0f ms/image; calibration %.0f s\n",
		s.Threshold, 100*s.FalseRejectRate, 100*s.DefectRecall, s.MsPerImage, s.CalibrateSec)
	fmt.Fprintf(w, "  wrote %s\n", filepath.Join(dir, "summary.json"))
}
