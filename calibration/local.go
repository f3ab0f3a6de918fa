package calibration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/local"
	"github.com/inspectd/inspectd/metrics"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/pipeline"
)

// calibrateLocal fits a patch-level density: the patches of every good image
// (the image itself and TrainViews-1 random transformations of it) form the
// reference, and the threshold comes from leave-one-out scores, each good
// image scored by the final model with its own patches left out. Those
// scores come from the model that will run on the line, less one image of
// sixteen, so they do not carry the bias of refitted fold models.
func calibrateLocal(ctx context.Context, ex *features.Extractor, backbone, sha string, imgs []gocv.Mat, files []string, cfg Config, start time.Time, prog Progress) (*Result, error) {
	dens, err := local.New(string(cfg.Method), cfg.Local.Density)
	if err != nil {
		return nil, err
	}
	l := &pipeline.Local{Dens: dens, Grid: cfg.Local.Grid, Top: cfg.Local.Top, Transforms: cfg.Transforms, Sigma: cfg.HeatmapSigma}
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed))
	var rows []float32
	var owner []int32
	var dim int
	for i, img := range imgs {
		views := []gocv.Mat{img.Clone()}
		for v := 1; v < cfg.TrainViews; v++ {
			views = append(views, cfg.Transforms.Apply(img, cfg.Transforms.TrainAngle(rng), rng))
		}
		r, h, w, d, err := l.Patches(ctx, ex, views)
		for _, v := range views {
			v.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("patches of %s: %w", files[i], err)
		}
		dim = d
		for _, vr := range r {
			rows = append(rows, vr...)
			for range h * w {
				owner = append(owner, int32(i))
			}
		}
		if prog != nil {
			prog("features", i+1, len(imgs))
		}
	}
	if err := dens.Fit(ctx, rows, len(owner), dim, owner); err != nil {
		return nil, fmt.Errorf("fitting %s: %w", cfg.Method, err)
	}
	rows = nil
	angles := cfg.Transforms.TestAngles(cfg.TestViews)
	maps := make([][]float32, len(imgs))
	for i, img := range imgs {
		if maps[i], err = l.Map(ctx, ex, img, angles, int32(i)); err != nil {
			return nil, fmt.Errorf("leave-one-out map of %s: %w", files[i], err)
		}
		if prog != nil {
			prog("folds", i+1, len(imgs))
		}
	}
	// Each good image's score uses a position norm made without it too, so
	// the scores the threshold comes from are out-of-sample twice over.
	good := make([]float64, len(imgs))
	for i := range imgs {
		var norm *pipeline.PositionNorm
		if cfg.Local.NormFloor > 0 {
			if norm, err = pipeline.NewPositionNorm(maps, i, cfg.Local.NormFloor); err != nil {
				return nil, err
			}
		}
		good[i], _ = l.Finish(maps[i], norm, false)
	}
	if cfg.Local.NormFloor > 0 {
		if l.Norm, err = pipeline.NewPositionNorm(maps, -1, cfg.Local.NormFloor); err != nil {
			return nil, err
		}
	}
	info, err := metrics.ChooseThreshold(good, cfg.TargetFRR, cfg.ThresholdBy)
	if err != nil {
		return nil, fmt.Errorf("choosing threshold: %w", err)
	}
	if math.IsNaN(info.Value) {
		return nil, errors.New("calibration produced a NaN threshold")
	}
	mc, err := json.Marshal(pipeline.LocalMethod{Grid: cfg.Local.Grid, Density: dens.Config(), Top: cfg.Local.Top, NormFloor: cfg.Local.NormFloor})
	if err != nil {
		return nil, err
	}
	slices.Sort(good)
	man := baseManifest(cfg, backbone, sha, len(angles), mc)
	// A typical good part's heat tops out near its image score.
	man.HeatmapGood = max(metrics.Median(good), 1e-6)
	man.Threshold = model.Threshold{Value: info.Value, Method: "loo-" + string(info.Method), TargetFRR: info.TargetFRR,
		Samples: info.N, EmpiricalFRR: info.EmpiricalFRR}
	man.Training.Images, man.Training.Vectors, man.Training.GoodScores = len(imgs), len(owner), good
	if err := describeThreshold(&man.Threshold, good, info.Method, cfg.Seed); err != nil {
		return nil, err
	}
	man.Training.Seconds = time.Since(start).Seconds()
	tensors := dens.Tensors()
	if l.Norm != nil {
		tensors = append(tensors, l.Norm.Tensors()...)
	}
	return &Result{Manifest: man, Tensors: tensors, Info: info}, nil
}

// TableFRRs are the operating points calibration reports besides its target.
var TableFRRs = []float64{0.01, 0.02, 0.05}

// describeThreshold fills the predicted false-reject rate at the chosen
// threshold, its band, and the table of thresholds for TableFRRs.
func describeThreshold(th *model.Threshold, good []float64, method metrics.ThresholdMethod, seed int64) error {
	targets := append([]float64{th.TargetFRR}, TableFRRs...)
	if th.TargetFRR <= 0 {
		targets = TableFRRs
	}
	rows, err := metrics.FRRTable(good, targets, method, uint64(seed))
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
