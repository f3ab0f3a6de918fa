package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/inspectd/inspectd/evaluation"
	"github.com/inspectd/inspectd/local"
	"github.com/inspectd/inspectd/model"
)

// runEval reads eval's flags; the evaluation itself is package evaluation.
func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval", "Usage: inspectd eval --data CATEGORY_DIR [flags]\n\nCalibrates on CATEGORY/train/good (or uses --model), scores CATEGORY/test/*, prints\nimage AUROC overall and per defect class, pixel AUROC where ground_truth masks exist,\nand writes summary.json, scores.csv, roc.png and histogram.png to --out. With\n--method flow,gaussian both densities are calibrated on one extraction of the\ngood parts' features and score the same test features (one folder per method).\n\nFlags:\n")
	data := fs.String("data", "", "category directory in MVTec AD layout")
	modelPath := fs.String("model", "", "use this model instead of calibrating")
	trainLimit := fs.Int("train-limit", 16, "good training images to calibrate on (0: all)")
	outDir := fs.String("out", "", "directory for summary.json and plots (default: out/eval-<category>)")
	sweep := fs.String("sweep-t", "", "also report image AUROC for these T (comma separated), e.g. 1,4,8,16,64")
	testLimit := fs.Int("test-limit", 0, "score at most N images per test class (0: all)")
	pixel := fs.Bool("pixel", true, "compute pixel AUROC where masks exist (needs heatmaps)")
	subsets := fs.Int("frr-subsets", 0, "also calibrate on this many random draws of --train-limit good images and measure their thresholds on the whole test set: image AUROC, false rejects and catches per draw (how much a draw of good parts moves them, and how honest the predicted false-reject rate is)")
	lineDefects := fs.Float64("line-defects", 0.05, "share of defective parts in the simulated line (0 < x < 0.5)")
	cacheDir := fs.String("feature-cache", "", "keep feature vectors of the training and test images in this directory and reuse them in later runs")
	cfgFn := calibFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *data == "" {
		fs.Usage()
		return fmt.Errorf("%w: --data is required", errUsage)
	}
	if !(*lineDefects > 0 && *lineDefects < 0.5) {
		return fmt.Errorf("%w: --line-defects %v: want 0 < x < 0.5", errUsage, *lineDefects)
	}
	// --method may name both densities; calibFlags validates one at a time.
	methodFlag := fs.Lookup("method")
	methods := stringList(methodFlag.Value.String())
	if len(methods) == 0 {
		return fmt.Errorf("%w: --method is empty", errUsage)
	}
	if err := methodFlag.Value.Set(methods[0]); err != nil {
		return err
	}
	cfg, err := cfgFn()
	if err != nil {
		return err
	}
	for _, m := range methods {
		if local.Is(m) && len(methods) > 1 {
			return fmt.Errorf("%w: patch method %s is evaluated on its own (it uses its own backbone and scores images whole)", errUsage, m)
		}
	}
	for _, m := range methods[1:] {
		c := cfg
		c.Method = model.Method(m)
		if err := c.Validate(); err != nil {
			return err
		}
	}
	if *outDir == "" {
		*outDir = filepath.Join("out", "eval-"+filepath.Base(filepath.Clean(*data)))
	}
	var sweepT []int
	if *sweep != "" {
		if sweepT, err = intList(*sweep); err != nil {
			return fmt.Errorf("--sweep-t: %w", err)
		}
	}
	if *subsets > 0 && *modelPath == "" && *trainLimit <= 0 {
		return fmt.Errorf("%w: --frr-subsets needs --train-limit > 0", errUsage)
	}
	return evaluation.Run(ctx, evaluation.Options{Data: *data, Model: *modelPath, OutDir: *outDir, Methods: methods, Config: cfg,
		TrainLimit: *trainLimit, TestLimit: *testLimit, SweepT: sweepT, Pixel: *pixel, FRRSubsets: *subsets,
		LineDefects: *lineDefects, FeatureCache: *cacheDir, OpenModel: openModel, OpenExtractor: openExtractor}, stdout, stderr)
}
