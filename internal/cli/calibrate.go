package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/evalstats"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/local"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/operating"
	"github.com/inspectd/inspectd/progress"
	"github.com/inspectd/inspectd/transform"
)

// calibFlags binds the calibration settings to flags, defaults from
// calibration.Defaults, and returns a function producing the Config.
func calibFlags(fs *flag.FlagSet) func() (calibration.Config, error) {
	d := calibration.Defaults()
	// The patch methods' flags show the default method's values; like every
	// flag, they apply only when given.
	pd := calibration.DefaultsFor(calibration.DefaultMethod)
	method := fs.String("method", string(calibration.DefaultMethod), "density, one of those registered: "+strings.Join(calibration.Methods(), ", ")+" (README, \"Accuracy\"); flags not given take the method's defaults, not the values shown here")
	backbone := fs.String("backbone", "", "backbone ONNX file (a path), or file name looked up beside INSPECTD_BACKBONE and in .deps/models (default: INSPECTD_BACKBONE when it has the method's taps, else the method's file: "+d.Backbone+" for flow, resnet50v2_s16.onnx for patchcore and cflow)")
	taps := fs.String("taps", strings.Join(d.Features.Taps, ","), "backbone outputs used as features (comma separated)")
	scales := fs.String("scales", joinInts(d.Features.Scales), "input sizes in pixels (comma separated; the short side with --aspect)")
	aspect := fs.Bool("aspect", d.Features.Aspect, "keep the aspect ratio: short side = scale, rounded to --stride")
	stride := fs.Int("stride", 32, "the backbone's largest stride, for --aspect")
	dims := fs.String("dims", "", "patch methods: channels kept per tap (comma separated, 0 keeps all)")
	neigh := fs.String("neighbourhood", joinInts(pd.Local.Grid.Neighbourhood), "patch methods: side of the square each position is averaged over, one for every tap or one per tap (comma separated; odd, 1..15)")
	maxBank := fs.Int("max-bank", 4096, "patchcore: most patches kept (greedy coreset above it)")
	top := fs.Float64("top", pd.Local.Top, "patch methods: share of the area whose mean score is the image score (0: the smoothed map's maximum)")
	normFloor := fs.Float64("norm-floor", pd.Local.NormFloor, "patch methods: standardise score maps per position with the good parts' leave-one-out maps, this share of the median deviation added (0: raw distances)")
	heatGuide := fs.Float64("heat-guide", pd.Local.HeatGuide, "patch methods: sharpen the heat map along the part's own edges and lines with a guided filter of this eps (on luminance stretched to 0..1; 0: the plain blurred map); the image score does not use it")
	mode := fs.String("mode", string(d.Transforms.Mode), "transformations: none, small (rotations within --max-angle), rotate (full circle), or auto (patch methods: compare none, small rotations, rotations, flips, shifts and lighting changes on the good parts with synthetic defects, and leave none only for a set that catches clearly more; not the default: over random draws its thresholds reject more good parts than the target, see README)")
	flips := fs.Bool("flips", false, "mirror training views at random (left-right, top-bottom; --train-views 4 unless given)")
	shift := fs.Float64("shift", 0, "move training views at random by up to this share of the part's size, 0..0.25 (--train-views 4 unless given)")
	maxAngle := fs.Float64("max-angle", d.Transforms.MaxAngle, "largest rotation in degrees for --mode small")
	jitter := fs.Float64("jitter", 0, "brightness/contrast/saturation jitter of the training views, 0..1 (patch methods: --train-views 4 unless given)")
	trainViews := fs.Int("train-views", d.TrainViews, "random transformations per good image for training")
	T := fs.Int("transforms", d.TestViews, "T, fixed transformations averaged per image when scoring")
	blocks := fs.Int("blocks", d.Flow.Blocks, "flow coupling blocks")
	hidden := fs.Int("hidden", d.Flow.Hidden, "flow subnet width")
	depth := fs.Int("depth", d.Flow.Depth, "flow subnet hidden layers")
	clamp := fs.Float64("clamp", d.Flow.Clamp, "flow soft clamp alpha (largest log-scale per half-block)")
	epochs := fs.Int("epochs", d.MaxEpochs, "most training epochs (stops earlier when the loss plateaus)")
	lr := fs.Float64("lr", d.LR, "Adam learning rate")
	whiten := fs.Bool("whiten", d.Whiten, "flow on features whitened by a shrunk Gaussian (starts as the Gaussian baseline)")
	valFrac := fs.Float64("val-fraction", d.ValFraction, "share of good images held out to choose the flow's epoch count (0: train all epochs)")
	patience := fs.Int("patience", d.Patience, "epochs without improvement on the held-out images before stopping")
	noise := fs.Float64("noise", d.Noise, "std of noise added to training features each epoch (flow regularisation)")
	frr := fs.Float64("frr", d.TargetFRR, "target false-reject rate of good parts for the threshold")
	folds := fs.Int("folds", d.Folds, "folds for out-of-sample good scores")
	thr := fs.String("threshold-method", string(d.ThresholdBy), "tail model of the good scores: auto (normal or log-normal by likelihood; the order statistic with 10 scores beyond the target quantile), gaussian+empirical (normal; the order statistic with 4 beyond: the patch methods' default), empirical, lognormal or gaussian")
	roi := fs.String("roi", "", "region of interest x,y,w,h in image pixels (default: whole image)")
	seed := fs.Int64("seed", d.Seed, "random seed")
	return func() (calibration.Config, error) {
		// Start from the chosen method's defaults; only flags given on the
		// command line override them.
		c := calibration.DefaultsFor(model.Method(*method))
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		var err error
		if set["backbone"] {
			c.Backbone = *backbone
		}
		if set["taps"] {
			c.Features.Taps = stringList(*taps)
		}
		if set["scales"] {
			if c.Features.Scales, err = intList(*scales); err != nil {
				return c, fmt.Errorf("--scales: %w", err)
			}
		}
		if set["aspect"] {
			c.Features.Aspect = *aspect
		}
		if set["stride"] {
			c.Features.Stride = *stride
		}
		if set["dims"] {
			if c.Local.Grid.Dims, err = intList(*dims); err != nil {
				return c, fmt.Errorf("--dims: %w", err)
			}
		}
		if set["norm-floor"] {
			c.Local.NormFloor = *normFloor
		}
		if set["heat-guide"] {
			c.Local.HeatGuide = *heatGuide
		}
		if set["top"] {
			c.Local.Top = *top
		}
		if set["neighbourhood"] {
			if c.Local.Grid.Neighbourhood, err = intList(*neigh); err != nil {
				return c, fmt.Errorf("--neighbourhood: %w", err)
			}
		}
		if set["max-bank"] {
			if c.Method != local.MethodPatchCore {
				return c, fmt.Errorf("--max-bank is a patchcore setting, not %s's", c.Method)
			}
			c.Local.Density = []byte(fmt.Sprintf(`{"max_bank":%d,"proj_dim":128,"seed":%d}`, *maxBank, *seed))
		}
		if set["seed"] && c.Method == local.MethodCFlow {
			// The flow's initial weights and batch order follow the seed.
			d := local.DefaultCFlow
			d.Seed = *seed
			if c.Local.Density, err = json.Marshal(d); err != nil {
				return c, err
			}
		}
		if set["train-views"] || set["transforms"] {
			c.Choose = nil
		}
		if set["mode"] && *mode == "auto" {
			c.Choose = calibration.Candidates()
		} else if set["mode"] || set["max-angle"] || set["jitter"] {
			c.Choose = nil
			// Each of the three replaces its own part of the method's
			// transformations: --jitter alone must not bring the flow's
			// rotations to a patch method, nor --mode drop a jitter.
			t := c.Transforms
			if set["mode"] {
				t.Mode = transform.Mode(*mode)
			}
			if set["jitter"] {
				t.Brightness, t.Contrast, t.Saturation = *jitter, *jitter, *jitter
			}
			switch {
			case t.Mode != transform.Small && set["max-angle"]:
				return c, fmt.Errorf("--max-angle is for --mode small; %s's transformations are mode %s", c.Method, t.Mode)
			case t.Mode != transform.Small:
				t.MaxAngle = 0
			case set["max-angle"] || t.MaxAngle == 0:
				t.MaxAngle = *maxAngle
			}
			c.Transforms = t
		}
		if set["flips"] || set["shift"] {
			if c.Choose != nil {
				return c, errors.New("--flips and --shift set the transformations; --mode auto chooses them")
			}
			c.Transforms.Flips, c.Transforms.Shift = *flips, *shift
		}
		ints := []struct {
			name string
			dst  *int
			v    int
		}{{"train-views", &c.TrainViews, *trainViews}, {"transforms", &c.TestViews, *T}, {"blocks", &c.Flow.Blocks, *blocks},
			{"hidden", &c.Flow.Hidden, *hidden}, {"depth", &c.Flow.Depth, *depth}, {"epochs", &c.MaxEpochs, *epochs},
			{"folds", &c.Folds, *folds}, {"patience", &c.Patience, *patience}}
		for _, f := range ints {
			if set[f.name] {
				*f.dst = f.v
			}
		}
		if !set["train-views"] && c.Choose == nil && local.Is(string(c.Method)) {
			// A patch method scores each part as it is (T=1): its
			// transformations act only on the extra training views, so
			// they need some, and views that vary nothing add nothing.
			switch varies := c.Transforms.Mode != transform.None || c.Transforms.Unnamed(); {
			case varies && c.TrainViews < 2:
				c.TrainViews = 4
			case !varies:
				c.TrainViews = 1
			}
		}
		floats := []struct {
			name string
			dst  *float64
			v    float64
		}{{"clamp", &c.Flow.Clamp, *clamp}, {"lr", &c.LR, *lr}, {"frr", &c.TargetFRR, *frr},
			{"noise", &c.Noise, *noise}, {"val-fraction", &c.ValFraction, *valFrac}}
		for _, f := range floats {
			if set[f.name] {
				*f.dst = f.v
			}
		}
		if set["whiten"] {
			c.Whiten = *whiten
		}
		if set["threshold-method"] {
			c.ThresholdBy = evalstats.ThresholdMethod(*thr)
		}
		if set["roi"] {
			c.ROI = *roi
		}
		if set["seed"] {
			c.Seed = *seed
		}
		return c, c.Validate()
	}
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}

func runCalibrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("calibrate", "Usage: inspectd calibrate --good DIR|FILE... --out MODEL [flags]\n   or: inspectd calibrate --camera --out MODEL [--count N] [--interval D] [flags]\n\nLearns a model from good parts and sets the decision threshold.\n\nFlags:\n")
	var good multiFlag
	fs.Var(&good, "good", "directory of good images, or an image file (repeatable; further arguments are files too)")
	out := fs.String("out", "", "model file to write (written atomically)")
	limit := fs.Int("limit", 0, "use at most N good images (0: all)")
	camera := fs.Bool("camera", false, "capture the good parts from the configured camera (INSPECTD_SOURCE) instead of --good")
	count := fs.Int("count", 16, "with --camera: good parts to capture")
	interval := fs.Duration("interval", 0, "with --camera: capture every interval (default: Enter on a terminal, or with INSPECTD_TRIGGER=mqtt each message on <prefix>/<camera>/calibrate/trigger, client id <client id>-calibrate, never the daemon's trigger topic)")
	cfgFn := calibFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	good = append(good, fs.Args()...)
	if (len(good) == 0) == !*camera || *out == "" {
		fs.Usage()
		return fmt.Errorf("%w: --out and one of --good or --camera are required", errUsage)
	}
	cfg, err := cfgFn()
	if err != nil {
		return err
	}
	var res *calibration.Result
	if *camera {
		mats, names, err := captureGood(ctx, *count, *interval, cfg.ROI, *out+".parts", os.Stdin, stderr)
		if err != nil {
			return err
		}
		res, err = calibrateMats(ctx, mats, names, cfg, stderr)
		for _, m := range mats {
			m.Close()
		}
		if err != nil {
			return err
		}
	} else {
		files, err := calibration.Images(good, *limit)
		if err != nil {
			return err
		}
		if res, err = calibrateFiles(ctx, files, cfg, stderr); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := model.Save(*out, res.Manifest, res.Tensors); err != nil {
		return err
	}
	m := res.Manifest
	fmt.Fprintf(stdout, "wrote %s: model %s, %s on %d images, threshold %.4g (%s, target FRR %.3g, %d out-of-sample good scores, max %.4g), %.0f s\n",
		*out, mustID(*out), m.Method, m.Training.Images, m.Threshold.Value, m.Threshold.Method, m.Threshold.TargetFRR,
		m.Threshold.Samples, m.Training.GoodScores[len(m.Training.GoodScores)-1], m.Training.Seconds)
	th := m.Threshold
	fmt.Fprintf(stdout, "  predicted false-reject rate at the threshold: %.2f%% (80%% band %.2f-%.2f%%)\n", 100*th.PredictedFRR, 100*th.PredictedLow, 100*th.PredictedHigh)
	for _, r := range th.Table {
		fmt.Fprintf(stdout, "  for %4.1f%% false rejects: threshold %.4g (predicted %.2f%%, 80%% band %.2f-%.2f%%)\n",
			100*r.TargetFRR, r.Threshold, 100*r.PredictedFRR, 100*r.Low, 100*r.High)
	}
	fmt.Fprintln(stdout, "  choose another operating point at run time with INSPECTD_FRR (or INSPECTD_THRESHOLD)")
	fmt.Fprintln(stdout, "  "+refineNote(th.Method))
	if note := manyPartsNote(&m); note != "" {
		fmt.Fprintln(stdout, "  "+note)
	}
	if m.Training.Choice == nil && m.Training.Views > 1 {
		fmt.Fprintf(stdout, "  trained on %d views of each part: %s\n", m.Training.Views, describeViews(m.Transforms))
	}
	printChoice(stdout, m.Training.Choice)
	return nil
}

// refineNote says what the daemon's default refinement (INSPECTD_REFINE=auto)
// will do with a threshold made by thresholdMethod, so the engineer is not
// surprised by a threshold that moves.
func refineNote(thresholdMethod string) string {
	if (config.Daemon{Refine: "auto"}).Refining(operating.MinFactorFor(thresholdMethod)) {
		return "on the line the daemon raises this threshold, never lowers it, if good parts score higher than these (INSPECTD_REFINE=auto; off keeps it fixed)"
	}
	return fmt.Sprintf("on the line the daemon keeps this threshold as calibrated (INSPECTD_REFINE=on lets it follow the line, down to %g times it)", operating.DefaultMinFactor)
}

// manyParts is where a calibration counts as "hundreds of parts": the
// whole ELPV train sets (412 and 644) are where the note below was measured.
const manyParts = 200

// manyPartsNote tells whoever calibrated a patch model on hundreds of parts
// at an input finer than 256 px of the setting measured better there for
// large defects. It is not the default: sixteen parts, and small defects,
// want the finer grid (README, "Accuracy").
func manyPartsNote(m *model.Manifest) string {
	scales := m.Features.Scales
	if !local.Is(string(m.Method)) || m.Training.Images < manyParts || len(scales) == 0 || slices.Max(scales) <= 256 {
		return ""
	}
	return fmt.Sprintf("%d good parts: where defects are large rather than small, --scales 256 --max-bank 16384 ranked defects better with hundreds of parts on ELPV solar cells (README, \"Accuracy\")", m.Training.Images)
}

// describeViews says in words what a part's training views vary.
func describeViews(t transform.Config) string {
	var parts []string
	switch t.Mode {
	case transform.Small:
		parts = append(parts, fmt.Sprintf("turned by up to %g degrees", t.MaxAngle))
	case transform.Rotate:
		parts = append(parts, "turned by any angle")
	}
	if t.Jitters() {
		parts = append(parts, fmt.Sprintf("brightness, contrast and saturation changed by up to %.3g/%.3g/%.3g%%", 100*t.Brightness, 100*t.Contrast, 100*t.Saturation))
	}
	if t.Flips {
		parts = append(parts, "mirrored")
	}
	if t.Shift > 0 {
		parts = append(parts, fmt.Sprintf("moved by up to %.3g%% of its size", 100*t.Shift))
	}
	if len(parts) == 0 {
		return "unchanged copies"
	}
	return strings.Join(parts, ", ")
}

// printChoice says which transformations calibration kept and on what
// evidence, so an engineer who knows the product can overrule it (--mode).
func printChoice(w io.Writer, c *model.TransformChoice) {
	if c == nil {
		return
	}
	fmt.Fprintf(w, "  transformations: %s, chosen by %d synthetic small defects drawn on the good parts:\n", c.Chosen, c.Probes)
	for _, e := range c.Candidates {
		mark := " "
		if e.Name == c.Chosen {
			mark = "*"
		}
		fmt.Fprintf(w, "   %s %-16s caught %5.1f%% at its own threshold %.4g, median log margin %+.3f\n", mark, e.Name, 100*e.Caught, e.Threshold, e.MedianMargin)
	}
}

func mustID(path string) string {
	m, err := model.Load(path)
	if err != nil {
		return "?"
	}
	return m.Manifest.ID
}

// calibrateFiles loads the images and calibrates, with a progress bar.
func calibrateFiles(ctx context.Context, files []string, cfg calibration.Config, stderr io.Writer) (*calibration.Result, error) {
	imgs, used, err := calibration.LoadImages(files, cfg.ROI, cfg.ImageMemory)
	if err != nil {
		return nil, err
	}
	defer imageops.CloseAll(imgs)
	return calibrateMats(ctx, imgs, used, cfg, stderr)
}

// calibrateMats calibrates on images already cropped to the ROI.
func calibrateMats(ctx context.Context, imgs []gocv.Mat, used []string, cfg calibration.Config, stderr io.Writer) (*calibration.Result, error) {
	ex, backbone, closeRT, err := openExtractor(cfg.Features, cfg.Backbone)
	if err != nil {
		return nil, err
	}
	defer closeRT()
	prog, done := progress.Stages(stderr)
	defer done()
	return calibration.Calibrate(ctx, ex, backbone, imgs, used, cfg, prog)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
