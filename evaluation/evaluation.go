package evaluation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/evalstats"
	"github.com/inspectd/inspectd/featcache"
	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/local"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/operating"
	"github.com/inspectd/inspectd/pipeline"
	"github.com/inspectd/inspectd/plots"
	"github.com/inspectd/inspectd/progress"
	"github.com/inspectd/inspectd/transform"
)

// Summary is the JSON `inspectd eval` writes.
type Summary struct {
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
	FalseRejectRate float64 `json:"false_reject_rate"`
	DefectRecall    float64 `json:"defect_recall"`
	// PredictedFRR is what the model's tail fit predicted at its threshold.
	PredictedFRR float64 `json:"predicted_frr"`
	// Operating compares, per target rate, the threshold calibration chose
	// and the rate it predicted with the rate measured on the good test parts.
	Operating []OperatingPoint `json:"operating_points,omitempty"`
	// Line is every good test part and a draw of the defective ones
	// (LineDefects of the stream) in shuffled order through the daemon's
	// threshold refinement (operating.Simulate), one entry per seed.
	Line        []LineRun `json:"simulated_line,omitempty"`
	LineDefects float64   `json:"simulated_line_defect_share,omitempty"`
	// FRRCheck (--frr-subsets): predicted against measured false-reject
	// rates over several calibrations on random draws of good parts.
	FRRCheck     *FRRCheck      `json:"frr_check,omitempty"`
	CalibrateSec float64        `json:"calibrate_seconds"`
	MsPerImage   float64        `json:"ms_per_image_median"`
	Counts       map[string]int `json:"counts"`
	Time         time.Time      `json:"time"`
}

// OperatingPoint is one target false-reject rate, predicted and measured.
type OperatingPoint struct {
	TargetFRR    float64 `json:"target_frr"`
	Threshold    float64 `json:"threshold"`
	PredictedFRR float64 `json:"predicted_frr"`
	PredictedLow float64 `json:"predicted_frr_low"`
	PredictedHi  float64 `json:"predicted_frr_high"`
	MeasuredFRR  float64 `json:"measured_frr"`
	Catch        float64 `json:"catch_rate"`
	// OracleCatch is the catch rate of the threshold that rejects exactly
	// as many good test parts as this one did, chosen with hindsight.
	OracleCatch float64 `json:"oracle_catch_rate"`
}

// LineRun is one simulated line: rates after the first 50, 100 and all parts.
type LineRun struct {
	Seed        int64       `json:"seed"`
	Checkpoints []LinePoint `json:"checkpoints"`
	Changes     int         `json:"threshold_changes"`
	Final       float64     `json:"final_threshold"`
	// RejectsHigh is the part after which the reject-rate check first said
	// the line rejected too many (0: never; operating.Simulation).
	RejectsHigh int `json:"rejects_high_after_part"`
}

// LinePoint is the state of a simulated line after some parts.
type LinePoint struct {
	Parts       int     `json:"parts"`
	FRR         float64 `json:"false_reject_rate"`
	Catch       float64 `json:"catch_rate"`
	OracleCatch float64 `json:"oracle_catch_rate"`
	// After: the parts after this checkpoint, decided with what was learnt.
	AfterFRR   float64 `json:"after_false_reject_rate"`
	AfterCatch float64 `json:"after_catch_rate"`
	// AfterOracleCatch: a threshold chosen with hindsight on the parts
	// after, at the false-reject count the line's decisions made there.
	AfterOracleCatch float64 `json:"after_oracle_catch_rate"`
	// StaticAfter*: the same parts after, at the calibrated threshold
	// (refinement off), so the two can be compared part for part.
	StaticAfterFRR   float64 `json:"static_after_false_reject_rate"`
	StaticAfterCatch float64 `json:"static_after_catch_rate"`
	// ReviewedAfter*: the same line where a person checks every rejected
	// part and confirms it good or defective (operating.SimulateReviewed).
	ReviewedAfterFRR         float64 `json:"reviewed_after_false_reject_rate"`
	ReviewedAfterCatch       float64 `json:"reviewed_after_catch_rate"`
	ReviewedAfterOracleCatch float64 `json:"reviewed_after_oracle_catch_rate"`
	Threshold                float64 `json:"threshold"`
}

type testImage struct {
	path, class, mask string
	score             float64
}

// Options are what one evaluation needs, read from the command line by the
// caller; the runtime comes in through the two openers, so this package
// reads no configuration.
type Options struct {
	Data    string // category directory in MVTec AD layout
	Model   string // a model file to evaluate instead of calibrating ("": calibrate)
	OutDir  string // summary.json and plots (one folder per method when several)
	Methods []string
	Config  calibration.Config // of the first method; the others differ only by Method
	// TrainLimit good training images are calibrated on (0: all); TestLimit
	// test images per class are scored (0: all).
	TrainLimit, TestLimit int
	SweepT                []int   // other T to report image AUROC at
	Pixel                 bool    // pixel AUROC and heat peaks where masks exist
	FRRSubsets            int     // calibrations on random draws, to check the predicted FRR
	LineDefects           float64 // share of defects in the simulated line
	FeatureCache          string  // directory of cached feature vectors ("": none)
	// OpenModel loads a model file with its runtime; OpenExtractor opens a
	// backbone for calibration and returns its path. Each returns a close.
	OpenModel     func(path string) (*pipeline.Inspector, func(), error)
	OpenExtractor func(feat features.Config, backbone string) (*features.Extractor, string, func(), error)
}

// Run calibrates (or loads), scores the test set, writes each method's
// outputs to its folder and prints its summary to stdout; progress goes to
// stderr.
func Run(ctx context.Context, o Options, stdout, stderr io.Writer) error {
	cfg, methods, sweepT := o.Config, o.Methods, o.SweepT
	if len(methods) == 0 {
		return errors.New("evaluation: no method")
	}
	tests, err := listTests(o.Data, o.TestLimit)
	if err != nil {
		return err
	}
	var runs []*evalRun
	var frrCheck *FRRCheck
	var vecCache *featcache.Cache // nil: no --feature-cache
	if o.Model != "" {
		in, closeFn, err := o.OpenModel(o.Model)
		if err != nil {
			return err
		}
		defer closeFn()
		runs = []*evalRun{{in: in, dir: o.OutDir}}
	} else {
		files, err := calibration.Images([]string{filepath.Join(o.Data, "train", "good")}, o.TrainLimit)
		if err != nil {
			return err
		}
		ex, backbone, closeRT, err := o.OpenExtractor(cfg.Features, cfg.Backbone)
		if err != nil {
			return err
		}
		defer closeRT()
		sha, err := model.FileSHA256(backbone)
		if err != nil {
			return fmt.Errorf("backbone: %w", err)
		}
		var store calibration.VectorStore
		if o.FeatureCache != "" {
			if vecCache, err = openFeatureCache(o.FeatureCache, ex.Dim(), sha, cfg.Features, cfg.Transforms, cfg.ROI); err != nil {
				return err
			}
			store = vecCache
		}
		if runs, err = calibrateEach(ctx, ex, backbone, sha, files, cfg, methods, o.OutDir, store, stderr); err != nil {
			return err
		}
		if o.FRRSubsets > 0 {
			if o.TrainLimit <= 0 {
				return errors.New("evaluation: FRR subsets need a training limit > 0")
			}
			if frrCheck, err = frrSubsets(ctx, ex, backbone, sha, o.Data, o.TrainLimit, o.FRRSubsets, cfg, tests, o.LineDefects, stderr); err != nil {
				return err
			}
		}
	}
	for _, r := range runs {
		if err := os.MkdirAll(r.dir, 0o755); err != nil {
			return err
		}
		man := r.in.Manifest()
		r.in.SetTransforms(cfg.TestViews)
		r.sum = Summary{Data: o.Data, Time: time.Now().UTC(), Counts: map[string]int{}, PerClass: map[string]float64{},
			Model: man.ID, Method: man.Method, TrainImages: man.Training.Images, Threshold: man.Threshold.Value,
			Transforms: cfg.TestViews, CalibrateSec: r.sum.CalibrateSec}
		r.byT = map[int][]float64{}
		r.lineDefects, r.sum.LineDefects = o.LineDefects, o.LineDefects
		r.pix = evalstats.NewAdaptivePixelAUROC(evalstats.DefaultPixelBins)
		if len(sweepT) > 0 {
			r.sum.ByT = map[int]float64{}
		}
	}

	// One extraction per (image, angle) serves every method and every T.
	first := runs[0].in
	angles, index := unionAngles(first.Manifest().Transforms, append([]int{cfg.TestViews}, sweepT...))
	if o.FeatureCache != "" && vecCache == nil {
		man := first.Manifest()
		if vecCache, err = openFeatureCache(o.FeatureCache, first.Dim(), man.Backbone.SHA256, man.Features, man.Transforms, man.ROI); err != nil {
			return err
		}
	}
	dim := first.Dim()
	pooled := !first.Local()
	for i := range tests {
		if err := ctx.Err(); err != nil {
			return err
		}
		t := &tests[i]
		withHeat := o.Pixel && t.mask != ""
		if !pooled {
			// Patch methods score each image whole: there is no pooled
			// vector to cache or share between methods.
			if err := inspectLocal(ctx, runs, t, cfg.TestViews, withHeat); err != nil {
				return fmt.Errorf("%s: %w", t.path, err)
			}
			if (i+1)%50 == 0 {
				fmt.Fprintf(stderr, "eval: scored %d/%d\n", i+1, len(tests))
			}
			continue
		}
		raw, err := evalImage(ctx, runs, vecCache, t, angles, withHeat || i < timedImages, withHeat)
		if err != nil {
			return fmt.Errorf("%s: %w", t.path, err)
		}
		for T, idx := range index {
			sel := make([]float32, 0, len(idx)*dim)
			for _, k := range idx {
				sel = append(sel, raw[k*dim:(k+1)*dim]...)
			}
			for _, r := range runs {
				s, err := r.in.ScoreVectors(sel, len(idx))
				if err != nil {
					return fmt.Errorf("%s: %w", t.path, err)
				}
				r.byT[T] = append(r.byT[T], s)
			}
		}
		if (i+1)%50 == 0 {
			fmt.Fprintf(stderr, "eval: scored %d/%d\n", i+1, len(tests))
		}
	}
	for i, r := range runs {
		if i == 0 {
			r.sum.FRRCheck = frrCheck
		}
		if err := r.finish(tests, cfg.TestViews, sweepT); err != nil {
			return err
		}
		printSummary(stdout, r.sum, r.dir)
	}
	return nil
}

// timedImages are inspected whole (backbone included) to report the time per
// image, since the scores themselves come from one shared extraction.
const timedImages = 10

// evalRun is one model under evaluation.
type evalRun struct {
	in      *pipeline.Inspector
	dir     string
	sum     Summary
	byT     map[int][]float64 // scores in test order, per T
	pix     *evalstats.PixelAUROC
	peaks   int
	peaksIn int // defects whose heat peak is on the mask
	ms      []float64
	// lineDefects is the share of defects in the simulated line.
	lineDefects float64
}

// calibrateEach extracts the good parts' features once and calibrates one
// model per method on them, saving each as model.zip (in a folder per method
// when there are several).
func calibrateEach(ctx context.Context, ex *features.Extractor, backbone, sha string, files []string, cfg calibration.Config, methods []string, outDir string, store calibration.VectorStore, stderr io.Writer) ([]*evalRun, error) {
	imgs, used, err := calibration.LoadImages(files, cfg.ROI, cfg.ImageMemory)
	if err != nil {
		return nil, err
	}
	defer imageops.CloseAll(imgs)
	prog, done := progress.Stages(stderr)
	defer done()
	start := time.Now()
	if local.Is(string(cfg.Method)) {
		res, err := calibration.Calibrate(ctx, ex, backbone, imgs, used, cfg, prog)
		if err != nil {
			return nil, fmt.Errorf("calibrating %s: %w", cfg.Method, err)
		}
		if err := os.MkdirAll(outDir, 0o755); err != nil {
			return nil, err
		}
		if err := model.Save(filepath.Join(outDir, "model.zip"), res.Manifest, res.Tensors); err != nil {
			return nil, err
		}
		in, err := pipeline.NewInspector(model.FromTensors(res.Manifest, res.Tensors), ex, sha)
		if err != nil {
			return nil, err
		}
		return []*evalRun{{in: in, dir: outDir, sum: Summary{CalibrateSec: res.Manifest.Training.Seconds}}}, nil
	}
	cache, err := calibration.BuildCacheWith(ctx, ex, imgs, used, cfg, store, prog)
	if err != nil {
		return nil, err
	}
	extract := time.Since(start)
	var runs []*evalRun
	for _, m := range methods {
		c := cfg
		c.Method = model.Method(m)
		res, err := calibration.FromCache(ctx, ex, backbone, sha, cache, imgs, c, time.Now().Add(-extract), prog)
		if err != nil {
			return nil, fmt.Errorf("calibrating %s: %w", m, err)
		}
		dir := outDir
		if len(methods) > 1 {
			dir = filepath.Join(outDir, m)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := model.Save(filepath.Join(dir, "model.zip"), res.Manifest, res.Tensors); err != nil {
			return nil, err
		}
		in, err := pipeline.NewInspector(model.FromTensors(res.Manifest, res.Tensors), ex, sha)
		if err != nil {
			return nil, err
		}
		runs = append(runs, &evalRun{in: in, dir: dir, sum: Summary{CalibrateSec: res.Manifest.Training.Seconds}})
	}
	return runs, nil
}

// openFeatureCache opens the feature cache for one extraction setup. Test
// views are never jittered, mirrored or shifted, so those are not part of
// the key (training views with them bypass the cache).
func openFeatureCache(dir string, dim int, backboneSHA string, feat features.Config, tr transform.Config, roi string) (*featcache.Cache, error) {
	tr = tr.AnglesOnly()
	return featcache.Open(dir, dim, struct {
		Backbone   string
		Features   features.Config
		Transforms transform.Config
		ROI        string
	}{backboneSHA, feat, tr, roi})
}

// unionAngles lists every test rotation the Ts need once, and for each T the
// indexes of its rotations in that list.
func unionAngles(tr transform.Config, Ts []int) ([]float64, map[int][]int) {
	var all []float64
	at := map[float64]int{}
	index := map[int][]int{}
	for _, T := range Ts {
		if _, ok := index[T]; ok {
			continue
		}
		for _, a := range tr.TestAngles(T) {
			k, ok := at[a]
			if !ok {
				k = len(all)
				at[a] = k
				all = append(all, a)
			}
			index[T] = append(index[T], k)
		}
	}
	return all, index
}

// evalImage returns the raw vectors of one test image at the angles (from
// the feature cache when there is one) and, with inspect, also runs each
// model's whole inspection of it, for its time and, with withHeat, its
// heatmap against the mask. The image is read at most once.
func evalImage(ctx context.Context, runs []*evalRun, vecCache *featcache.Cache, t *testImage, angles []float64, inspect, withHeat bool) ([]float32, error) {
	var img gocv.Mat
	read := false
	load := func() (gocv.Mat, error) {
		if !read {
			m, err := imageops.ReadFile(t.path)
			if err != nil {
				return m, err
			}
			img, read = m, true
		}
		return img, nil
	}
	defer func() {
		if read {
			img.Close()
		}
	}()
	first := runs[0].in
	compute := func(want []float64) ([]float32, error) {
		m, err := load()
		if err != nil {
			return nil, err
		}
		return first.Vectors(ctx, m, want)
	}
	var raw []float32
	var err error
	if vecCache != nil {
		raw, err = vecCache.Vectors(t.path, angles, compute)
	} else {
		raw, err = compute(angles)
	}
	if err != nil || !inspect {
		return raw, err
	}
	if _, err := load(); err != nil {
		return nil, err
	}
	return raw, inspectParts(ctx, runs, img, t, withHeat)
}

// inspectLocal scores one test image with each (patch-level) model by a
// whole inspection, recording score, time and, with a mask, pixel figures.
func inspectLocal(ctx context.Context, runs []*evalRun, t *testImage, T int, withHeat bool) error {
	img, err := imageops.ReadFile(t.path)
	if err != nil {
		return err
	}
	defer img.Close()
	for _, r := range runs {
		res, err := r.in.Inspect(ctx, img, withHeat)
		if err != nil {
			return err
		}
		r.byT[T] = append(r.byT[T], res.Score)
		if err := r.record(res, img, t, withHeat); err != nil {
			return err
		}
	}
	return nil
}

// record keeps an inspection's time and, with a heatmap, its pixel figures.
func (r *evalRun) record(res pipeline.Result, img gocv.Mat, t *testImage, withHeat bool) error {
	r.ms = append(r.ms, float64(res.Elapsed.Microseconds())/1000)
	if !withHeat {
		return nil
	}
	onMask, err := addPixels(r.pix, r.in, img, res.Heat, t.mask)
	if err != nil {
		return err
	}
	if t.class != "good" {
		r.peaks++
		if onMask {
			r.peaksIn++
		}
	}
	return nil
}

// inspectParts runs each model's whole inspection of one test image, for
// its time and its heatmap (when the image has a mask).
func inspectParts(ctx context.Context, runs []*evalRun, img gocv.Mat, t *testImage, withHeat bool) error {
	for _, r := range runs {
		res, err := r.in.Inspect(ctx, img, withHeat)
		if err != nil {
			return err
		}
		if err := r.record(res, img, t, withHeat); err != nil {
			return err
		}
	}
	return nil
}

// finish computes the run's summary from its scores and writes its outputs.
func (r *evalRun) finish(tests []testImage, T int, sweepT []int) error {
	sum := &r.sum
	sum.MsPerImage = evalstats.Median(r.ms)
	scores := r.byT[T]
	labels := make([]bool, len(tests))
	byClass := map[string][]float64{}
	var good []float64
	var rejected, caught, nDefect int
	for i, t := range tests {
		s := scores[i]
		labels[i] = t.class != "good"
		byClass[t.class] = append(byClass[t.class], s)
		sum.Counts[t.class]++
		if t.class == "good" {
			good = append(good, s)
			if s > sum.Threshold {
				rejected++
			}
		} else {
			nDefect++
			if s > sum.Threshold {
				caught++
			}
		}
	}
	var err error
	if sum.ImageAUROC, err = evalstats.AUROC(scores, labels); err != nil {
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
		if a, err := evalstats.AUROC(cs, cl); err == nil {
			sum.PerClass[class] = a
		}
	}
	for _, t := range sweepT {
		if a, err := evalstats.AUROC(r.byT[t], labels); err == nil {
			sum.ByT[t] = a
		}
	}
	if r.peaks > 0 {
		f := float64(r.peaksIn) / float64(r.peaks)
		sum.PeakInMask = &f
	}
	if d, _ := r.pix.Counts(); d > 0 {
		if a, err := r.pix.AUROC(); err == nil {
			sum.PixelAUROC = &a
		}
	}
	for i := range tests {
		tests[i].score = scores[i]
	}
	if err := r.operating(tests, scores); err != nil {
		return err
	}
	return writeEvalOutputs(r.dir, *sum, tests, scores, labels, byClass)
}

// lineSeeds are the shuffles of the simulated line: forty, because a line
// of a few hundred parts holds only a dozen defects and a few false
// rejects, so one shuffle's rates move in steps of 5-10 points (five
// shuffles put mono's false rejects after the 100th part at 2.6%, forty at
// 1.7%). Simulating is cheap: the parts are scored once.
var lineSeeds = func() []int64 {
	s := make([]int64, 40)
	for i := range s {
		s[i] = int64(i + 1)
	}
	return s
}()

// operating measures the threshold's honesty: for the calibrated target and
// the table's rates, the predicted false-reject rate next to the measured
// one and the catch rate; then the simulated line with refinement on.
func (r *evalRun) operating(tests []testImage, scores []float64) error {
	man := r.in.Manifest()
	var good, bad []float64
	parts := make([]operating.Part, len(tests))
	for i, t := range tests {
		parts[i] = operating.Part{Score: scores[i], Defect: t.class != "good"}
		if t.class == "good" {
			good = append(good, scores[i])
		} else {
			bad = append(bad, scores[i])
		}
	}
	sum := &r.sum
	sum.PredictedFRR = man.Threshold.PredictedFRR
	rows := append([]model.ThresholdRow{{TargetFRR: man.Threshold.TargetFRR, Threshold: man.Threshold.Value,
		PredictedFRR: man.Threshold.PredictedFRR, Low: man.Threshold.PredictedLow, High: man.Threshold.PredictedHigh}},
		man.Threshold.Table...)
	for i, row := range rows {
		if i > 0 && row.TargetFRR == rows[0].TargetFRR {
			continue
		}
		op := OperatingPoint{TargetFRR: row.TargetFRR, Threshold: row.Threshold, PredictedFRR: row.PredictedFRR,
			PredictedLow: row.Low, PredictedHi: row.High}
		op.MeasuredFRR = evalstats.ShareAbove(good, row.Threshold)
		op.Catch = evalstats.ShareAbove(bad, row.Threshold)
		op.OracleCatch = evalstats.OracleCatch(good, bad, evalstats.CountAbove(good, row.Threshold))
		sum.Operating = append(sum.Operating, op)
	}
	if len(man.Training.GoodScores) < 3 || man.Threshold.Value <= 0 || man.Threshold.TargetFRR <= 0 {
		return nil
	}
	lines, err := simulateLines(parts, man, r.lineDefects, lineSeeds)
	if err != nil {
		return err
	}
	sum.Line = lines
	return nil
}

// simulateLines streams every good part and a random draw of defects (at
// share lineDefects of the stream) through the daemon's refinement, once
// per seed. A test set is often mostly defects (ELPV: two thirds); a line
// is mostly good parts, which is what refinement relies on.
func simulateLines(parts []operating.Part, man model.Manifest, lineDefects float64, seeds []int64) ([]LineRun, error) {
	var goodParts, badParts []operating.Part
	for _, p := range parts {
		if p.Defect {
			badParts = append(badParts, p)
		} else {
			goodParts = append(goodParts, p)
		}
	}
	nBad := min(len(badParts), int(math.Round(lineDefects/(1-lineDefects)*float64(len(goodParts)))))
	method, err := evalstats.ParseThresholdMethod(man.Threshold.Method)
	if err != nil {
		method = evalstats.MethodAuto
	}
	var runs []LineRun
	for _, seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(seed), 0x11e))
		line := slices.Clone(goodParts)
		for _, i := range rng.Perm(len(badParts))[:nBad] {
			line = append(line, badParts[i])
		}
		// The line's engineer knows its defect rate: the reject-rate check is
		// set to the simulated line's.
		cfg := operating.Config{Refine: true, TargetFRR: man.Threshold.TargetFRR, TailMethod: method, MinFactor: operating.MinFactorFor(man.Threshold.Method),
			DefectRate: lineDefects}
		sim, err := operating.Simulate(line, man.Threshold.Value, man.Training.GoodScores, seed, cfg)
		if err != nil {
			return nil, fmt.Errorf("simulated line: %w", err)
		}
		rev, err := operating.SimulateReviewed(line, man.Threshold.Value, man.Training.GoodScores, seed, cfg)
		if err != nil {
			return nil, fmt.Errorf("simulated line, reviewed: %w", err)
		}
		run := LineRun{Seed: seed, Changes: len(sim.Changes), Final: sim.Final, RejectsHigh: sim.RejectsHigh}
		for k, c := range sim.Checkpoints {
			r := rev.Checkpoints[k].After
			run.Checkpoints = append(run.Checkpoints, LinePoint{Parts: c.Parts, FRR: c.Cumulative.FRR, Catch: c.Cumulative.Catch,
				OracleCatch: c.Cumulative.OracleCatch, AfterFRR: c.After.FRR, AfterCatch: c.After.Catch, AfterOracleCatch: c.After.OracleCatch,
				StaticAfterFRR: c.StaticAfter.FRR, StaticAfterCatch: c.StaticAfter.Catch,
				ReviewedAfterFRR: r.FRR, ReviewedAfterCatch: r.Catch, ReviewedAfterOracleCatch: r.OracleCatch, Threshold: c.Threshold})
		}
		runs = append(runs, run)
	}
	return runs, nil
}

// addPixels compares the heatmap with the ground-truth mask at the mask's
// resolution (the part's, within the ROI) and reports whether the heatmap's
// maximum lies on the mask.
func addPixels(pix *evalstats.PixelAUROC, in *pipeline.Inspector, img gocv.Mat, heat []float32, maskPath string) (bool, error) {
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

func writeEvalOutputs(dir string, sum Summary, tests []testImage, scores []float64, labels []bool, byClass map[string][]float64) error {
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
	roc, err := evalstats.ROC(scores, labels)
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

func printSummary(w io.Writer, s Summary, dir string) {
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
	for _, op := range s.Operating {
		fmt.Fprintf(w, "  target FRR %4.1f%%: threshold %.4g, predicted FRR %.1f%% (80%%: %.1f-%.1f%%), measured %.1f%%, catches %.1f%% (oracle at that FRR %.1f%%)\n",
			100*op.TargetFRR, op.Threshold, 100*op.PredictedFRR, 100*op.PredictedLow, 100*op.PredictedHi, 100*op.MeasuredFRR, 100*op.Catch, 100*op.OracleCatch)
	}
	if len(s.Line) > 0 {
		// medians over the shuffles, per checkpoint
		for k := range s.Line[0].Checkpoints {
			var upTo, after, static, reviewed lineSeries
			for _, l := range s.Line {
				if k < len(l.Checkpoints) {
					c := l.Checkpoints[k]
					upTo.add(c.FRR, c.Catch, c.OracleCatch)
					after.add(c.AfterFRR, c.AfterCatch, c.AfterOracleCatch)
					static.add(c.StaticAfterFRR, c.StaticAfterCatch, 0)
					reviewed.add(c.ReviewedAfterFRR, c.ReviewedAfterCatch, c.ReviewedAfterOracleCatch)
				}
			}
			fmt.Fprintf(w, "  simulated line (%.0f%% defects, refinement on, median of %d shuffles) after %d parts: false rejects %.1f%%, catches %.1f%% (oracle at that FRR %.1f%%)",
				100*s.LineDefects, len(upTo.frr), s.Line[0].Checkpoints[k].Parts, 100*evalstats.Median(upTo.frr), 100*evalstats.Median(upTo.catch), 100*evalstats.Median(upTo.oracle))
			if k < len(s.Line[0].Checkpoints)-1 {
				fmt.Fprintf(w, "; the parts after: false rejects %.1f%% (mean %.1f%%), catches %.1f%% (oracle at that FRR %.1f%%); without refinement %.1f%% (mean %.1f%%), catches %.1f%%",
					100*evalstats.Median(after.frr), 100*evalstats.Mean(after.frr), 100*evalstats.Median(after.catch), 100*evalstats.Median(after.oracle),
					100*evalstats.Median(static.frr), 100*evalstats.Mean(static.frr), 100*evalstats.Median(static.catch))
				fmt.Fprintf(w, "; every reject checked by a person %.1f%% (mean %.1f%%), catches %.1f%% (oracle at that FRR %.1f%%)",
					100*evalstats.Median(reviewed.frr), 100*evalstats.Mean(reviewed.frr), 100*evalstats.Median(reviewed.catch), 100*evalstats.Median(reviewed.oracle))
			}
			fmt.Fprintln(w)
		}
		var on []float64
		for _, l := range s.Line {
			if l.RejectsHigh > 0 {
				on = append(on, float64(l.RejectsHigh))
			}
		}
		fmt.Fprintf(w, "  simulated line: the reject-rate check (INSPECTD_DEFECT_RATE set to the line's %.0f%%) went on in %d of %d shuffles", 100*s.LineDefects, len(on), len(s.Line))
		if len(on) > 0 {
			fmt.Fprintf(w, ", first after part %.0f (median)", evalstats.Median(on))
		}
		fmt.Fprintln(w)
	}
	printFRRCheck(w, s.FRRCheck)
	fmt.Fprintf(w, "  wrote %s\n", filepath.Join(dir, "summary.json"))
}
