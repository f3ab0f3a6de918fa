package calibration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/evalstats"
	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/local"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/pipeline"
	"github.com/inspectd/inspectd/transform"
)

// calibrateLocal fits a patch-level density: the patches of every good image
// (the image itself and TrainViews-1 random transformations of it) form the
// reference, and the threshold comes from leave-one-out scores, each good
// image scored by the final model with its own patches left out. Those
// scores come from the model that will run on the line, less one image of
// sixteen, so they do not carry the bias of refitted fold models.
//
// With cfg.Choose, each candidate set of transformations is fitted in turn
// and judged by synthetic small defects drawn on the good parts (each
// scored with its own part left out) against that candidate's own
// threshold; the best is kept and the evidence goes into the manifest.
func calibrateLocal(ctx context.Context, ex *features.Extractor, backbone, sha string, imgs []gocv.Mat, files []string, cfg Config, start time.Time, prog Progress) (*Result, error) {
	// The extractor decides each part's input (Patches uses its first scale).
	fc := ex.Config()
	shape := partShape(imgs) // as they came, before they are brought to one size
	imgs, release, _ := oneSize(imgs, files, fc, fc.Scales[0])
	defer release()
	l := pipeline.Local{Grid: cfg.Local.Grid, Top: cfg.Local.Top, Sigma: cfg.HeatmapSigma}
	cands := cfg.Choose
	angles := []float64{0}
	if len(cands) == 0 {
		cands = []Candidate{{Name: string(cfg.Transforms.Mode), Transforms: cfg.Transforms, TrainViews: cfg.TrainViews}}
		angles = cfg.Transforms.TestAngles(cfg.TestViews)
	}
	// Every candidate shares the untransformed views' patches, extracted once.
	patches, err := extractGood(ctx, &l, ex, imgs, files, cfg.PatchMemory, prog)
	if err != nil {
		return nil, err
	}
	var probes [][]float32
	var probeOwner []int
	if len(cands) > 1 {
		pimgs, owner, err := makeProbes(imgs, cfg.Seed)
		if err != nil {
			// Images too small for a defect of under 1% (or otherwise
			// unfit for one) leave nothing to judge by: the first,
			// plainest candidate, as without a choice.
			slog.Warn("transformations not chosen: no synthetic defects on these good parts; using the first candidate", "candidate", cands[0].Name, "err", err)
			cands = cands[:1]
		}
		for j, p := range pimgs {
			r, _, _, _, err := l.Patches(ctx, ex, []gocv.Mat{p})
			if err != nil {
				imageops.CloseAll(pimgs)
				return nil, fmt.Errorf("patches of synthetic defect %d: %w", j, err)
			}
			probes = append(probes, r[0])
		}
		imageops.CloseAll(pimgs)
		probeOwner = owner
	}
	var (
		best    *localFit
		choice  = &model.TransformChoice{Probes: len(probes)}
		fits    []*localFit
		bestIdx int
	)
	for ci, c := range cands {
		f, err := fitLocal(ctx, ex, l, patches, c, cfg, angles, probes, probeOwner)
		if err != nil {
			return nil, err
		}
		if len(cands) > 1 {
			ev, err := judge(c.Name, c.TrainViews, f.good, f.probes, cfg.TargetFRR, cfg.ThresholdBy)
			if err != nil {
				return nil, err
			}
			choice.Candidates = append(choice.Candidates, ev)
			slog.Debug("transformation candidate", "name", c.Name, "caught", ev.Caught, "median_margin", ev.MedianMargin, "threshold", ev.Threshold)
			// Keep only what the choice needs of the others.
			f.probes = nil
		}
		fits = append(fits, f)
		if prog != nil && len(cands) > 1 {
			prog("candidates", ci+1, len(cands))
		}
	}
	if len(cands) > 1 {
		var err error
		if bestIdx, err = pick(choice.Candidates, len(probes)); err != nil {
			return nil, err
		}
		choice.Chosen = cands[bestIdx].Name
	}
	best = fits[bestIdx]
	cfg.Transforms, cfg.TrainViews = cands[bestIdx].Transforms, cands[bestIdx].TrainViews
	l.Dens, l.Transforms, l.Norm = best.dens, cfg.Transforms, best.norm
	good := best.good
	info, err := evalstats.ChooseThreshold(good, cfg.TargetFRR, cfg.ThresholdBy)
	if err != nil {
		return nil, fmt.Errorf("choosing threshold: %w", err)
	}
	if math.IsNaN(info.Value) {
		return nil, errors.New("calibration produced a NaN threshold")
	}
	lm := pipeline.LocalMethod{Grid: cfg.Local.Grid, Density: best.dens.Config(), Top: cfg.Local.Top, NormFloor: cfg.Local.NormFloor}
	if cfg.Local.HeatGuide > 0 {
		lm.HeatGuide, lm.HeatGuideRadius = cfg.Local.HeatGuide, pipeline.GuideRadius(patches.h, patches.w)
	}
	mc, err := json.Marshal(lm)
	if err != nil {
		return nil, err
	}
	slices.Sort(good)
	man := baseManifest(cfg, backbone, sha, len(angles), mc, shape)
	// A typical good part's heat tops out near its image score.
	man.HeatmapGood = max(evalstats.Median(good), 1e-6)
	// A rule that resolves per target rate is recorded as the rule, so
	// that INSPECTD_FRR and the table resolve it for their own rates;
	// auto's choice by likelihood is recorded as what it chose.
	tail := info.Method
	if cfg.ThresholdBy == evalstats.MethodGaussianEmpirical {
		tail = cfg.ThresholdBy
	}
	man.Threshold = model.Threshold{Value: info.Value, Method: evalstats.ScoresLeaveOneOut + string(tail), TargetFRR: info.TargetFRR,
		Samples: info.N, EmpiricalFRR: info.EmpiricalFRR}
	man.Training.Images, man.Training.Vectors, man.Training.GoodScores = len(imgs), best.rows, good
	if len(cands) > 1 {
		man.Training.Choice = choice
	}
	if err := describeThreshold(&man.Threshold, good, tail, cfg.Seed); err != nil {
		return nil, err
	}
	man.Training.Seconds = time.Since(start).Seconds()
	tensors := best.dens.Tensors()
	if l.Norm != nil {
		tensors = append(tensors, l.Norm.Tensors()...)
	}
	return &Result{Manifest: man, Tensors: tensors, Info: info}, nil
}

// localFit is one candidate's fitted density with its leave-one-out good
// scores, the final position norm, and the probes' scores.
type localFit struct {
	dens   local.Density
	norm   *pipeline.PositionNorm
	good   []float64
	probes []float64
	rows   int
}

// fitLocal fits the density on the good images under one candidate's
// transformations and scores, with each image's own patches left out, the
// good images (at angles) and the probes (untransformed; probe j drawn on
// good image probeOwner[j]).
func fitLocal(ctx context.Context, ex *features.Extractor, l pipeline.Local, good *goodPatches,
	c Candidate, cfg Config, angles []float64, probes [][]float32, probeOwner []int) (*localFit, error) {
	dens, err := local.New(string(cfg.Method), cfg.Local.Density)
	if err != nil {
		return nil, err
	}
	imgs, files, h, w, dim := good.imgs, good.files, good.h, good.w, good.dim
	l.Dens, l.Transforms = dens, c.Transforms
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed))
	// The transformed views together add as many patches as the image
	// itself, so a part gives twice its grid when it has views.
	perPart := h * w
	if c.TrainViews > 1 {
		perPart *= 2
	}
	share := poolShare(len(imgs), perPart, dim, cfg.PatchMemory)
	if share < 1 {
		slog.Info("patches sampled for the bank: the good parts' patches exceed half the patch memory",
			"parts", len(imgs), "share", share, "patch_memory", cfg.PatchMemory)
	}
	rows := make([]float32, 0, int(share*float64(len(imgs)*perPart)*1.05+1)*dim)
	var owner []int32
	// Densities that condition on position get each row's place in the grid.
	pd, positional := dens.(local.Positional)
	var at, grid []local.Position
	if positional {
		grid = local.GridPositions(h, w)
	}
	// take appends a share of one view's patches, drawn at random (the
	// image's own all of them while they fit).
	take := func(vr []float32, keep float64, draw bool) int {
		n := 0
		for p := range h * w {
			if !draw || rng.Float64() < keep {
				rows = append(rows, vr[p*dim:(p+1)*dim]...)
				if positional {
					at = append(at, grid[p])
				}
				n++
			}
		}
		return n
	}
	for i, img := range imgs {
		b, err := good.of(ctx, i)
		if err != nil {
			return nil, err
		}
		n := take(b, share, share < 1)
		var views []gocv.Mat
		for v := 1; v < c.TrainViews; v++ {
			views = append(views, transform.Apply(c.Transforms, img, c.Transforms.TrainAngle(rng), rng))
		}
		if len(views) > 0 {
			r, hh, ww, _, err := l.Patches(ctx, ex, views)
			imageops.CloseAll(views)
			if err != nil {
				return nil, fmt.Errorf("patches of %s (%s): %w", files[i], c.Name, err)
			}
			if hh != h || ww != w {
				return nil, fmt.Errorf("patches of %s (%s): transformed grid %dx%d, not %dx%d", files[i], c.Name, ww, hh, w, h)
			}
			// Views drawn at random positions rather than whole: neighbouring
			// patches of one view are near copies (each averages a 3x3
			// neighbourhood), and the coreset's time grows with the rows it
			// starts from, so more views must not mean a slower calibration.
			keep := share / float64(len(r))
			for _, vr := range r {
				n += take(vr, keep, true)
			}
		}
		for range n {
			owner = append(owner, int32(i))
		}
	}
	tViews := time.Now()
	if positional {
		err = pd.FitAt(ctx, rows, len(owner), dim, owner, at)
	} else {
		err = dens.Fit(ctx, rows, len(owner), dim, owner)
	}
	if err != nil {
		return nil, fmt.Errorf("fitting %s (%s): %w", cfg.Method, c.Name, err)
	}
	tFit := time.Now()
	defer func() {
		slog.Debug("candidate fitted", "name", c.Name, "rows", len(owner), "fit", tFit.Sub(tViews).Round(time.Millisecond),
			"score", time.Since(tFit).Round(time.Millisecond))
	}()
	f := &localFit{dens: dens, rows: len(owner)}
	rows, at = nil, nil
	maps := make([][]float32, len(imgs))
	for i, img := range imgs {
		if len(angles) == 1 && angles[0] == 0 {
			var b []float32
			if b, err = good.of(ctx, i); err == nil {
				maps[i], err = l.MapRows(ctx, [][]float32{b}, h, w, angles, int32(i))
			}
		} else {
			maps[i], err = l.Map(ctx, ex, img, angles, int32(i))
		}
		if err != nil {
			return nil, fmt.Errorf("leave-one-out map of %s: %w", files[i], err)
		}
	}
	// Each good image's score uses a position norm made without it too, so
	// the scores the threshold comes from are out-of-sample twice over.
	norms := make([]*pipeline.PositionNorm, len(imgs))
	f.good = make([]float64, len(imgs))
	for i := range imgs {
		if cfg.Local.NormFloor > 0 {
			if norms[i], err = pipeline.NewPositionNorm(maps, i, cfg.Local.NormFloor); err != nil {
				return nil, err
			}
		}
		f.good[i], _ = l.Finish(maps[i], norms[i], false)
	}
	if cfg.Local.NormFloor > 0 {
		if f.norm, err = pipeline.NewPositionNorm(maps, -1, cfg.Local.NormFloor); err != nil {
			return nil, err
		}
	}
	for j, p := range probes {
		o := probeOwner[j]
		m, err := l.MapRows(ctx, [][]float32{p}, h, w, []float64{0}, int32(o))
		if err != nil {
			return nil, fmt.Errorf("synthetic defect %d (%s): %w", j, c.Name, err)
		}
		s, _ := l.Finish(m, norms[o], false)
		f.probes = append(f.probes, s)
	}
	return f, nil
}

// TableFRRs are the operating points calibration reports besides its target.
var TableFRRs = []float64{0.01, 0.02, 0.05}

// describeThreshold fills the predicted false-reject rate at the chosen
// threshold, its band, and the table of thresholds for TableFRRs.
func describeThreshold(th *model.Threshold, good []float64, method evalstats.ThresholdMethod, seed int64) error {
	targets := append([]float64{th.TargetFRR}, TableFRRs...)
	if th.TargetFRR <= 0 {
		targets = TableFRRs
	}
	rows, err := evalstats.FRRTable(good, targets, method, uint64(seed))
	if err != nil {
		return fmt.Errorf("threshold table: %w", err)
	}
	if th.TargetFRR > 0 {
		th.PredictedFRR, th.PredictedLow, th.PredictedHigh = rows[0].PredictedFRR, rows[0].Low, rows[0].High
		rows = rows[1:]
	}
	th.Table = th.Table[:0]
	for _, r := range rows {
		th.Table = append(th.Table, model.ThresholdRow(r))
	}
	return nil
}
