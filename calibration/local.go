package calibration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
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
	good := make([]float64, len(imgs))
	for i, img := range imgs {
		if good[i], _, err = l.Inspect(ctx, ex, img, angles, int32(i)); err != nil {
			return nil, fmt.Errorf("leave-one-out score of %s: %w", files[i], err)
		}
		if prog != nil {
			prog("folds", i+1, len(imgs))
		}
	}
	info, err := metrics.ChooseThreshold(good, cfg.TargetFRR, cfg.ThresholdBy)
	if err != nil {
		return nil, fmt.Errorf("choosing threshold: %w", err)
	}
	if math.IsNaN(info.Value) {
		return nil, errors.New("calibration produced a NaN threshold")
	}
	mc, err := json.Marshal(pipeline.LocalMethod{Grid: cfg.Local.Grid, Density: dens.Config(), Top: cfg.Local.Top})
	if err != nil {
		return nil, err
	}
	slices.Sort(good)
	host, _ := os.Hostname()
	man := model.Manifest{
		Backbone:       model.Backbone{File: filepath.Base(backbone), SHA256: sha},
		Features:       cfg.Features,
		ROI:            cfg.ROI,
		Transforms:     cfg.Transforms,
		TestTransforms: len(angles),
		Method:         cfg.Method,
		MethodConfig:   mc,
		HeatmapSigma:   cfg.HeatmapSigma,
		// Good parts' heat peaks at their image score; the median of the
		// leave-one-out scores is where a typical good part's map tops out.
		HeatmapGood: metrics.Median(good),
		Threshold: model.Threshold{Value: info.Value, Method: "loo-" + string(info.Method), TargetFRR: info.TargetFRR,
			Samples: info.N, EmpiricalFRR: info.EmpiricalFRR},
		Training: model.Training{Images: len(imgs), Vectors: len(owner), Seed: cfg.Seed, GoodScores: good,
			Created: time.Now().UTC(), Host: host},
	}
	man.Training.Seconds = time.Since(start).Seconds()
	return &Result{Manifest: man, Tensors: dens.Tensors(), Info: info}, nil
}
