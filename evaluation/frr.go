package evaluation

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"

	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/evalstats"
	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/pipeline"
)

// FRRCheck is how honest the threshold's predicted false-reject rate is over
// several calibrations: one calibration draws its good parts once, and its
// measured rate on a few hundred good test parts scatters widely around
// what the tail model predicts, so single runs cannot tell an honest
// estimate from a biased one.
type FRRCheck struct {
	Subsets int             `json:"subsets"`
	Images  int             `json:"images_per_subset"`
	Good    int             `json:"good_test_parts"`
	Points  []FRRCheckPoint `json:"points"`
}

// FRRCheckPoint summarises one target rate over the subsets.
type FRRCheckPoint struct {
	TargetFRR      float64   `json:"target_frr"`
	PredictedMean  float64   `json:"predicted_frr_mean"`
	MeasuredMean   float64   `json:"measured_frr_mean"`
	MeasuredMedian float64   `json:"measured_frr_median"`
	Measured       []float64 `json:"measured_frr"`
}

// frrSubsets calibrates on k random draws of n good training images and
// measures each calibration's thresholds (its target and the 1/2/5% table)
// on the good test parts.
func frrSubsets(ctx context.Context, ex *features.Extractor, backbone, sha, data string, n, k int, cfg calibration.Config, tests []testImage, stderr io.Writer) (*FRRCheck, error) {
	all, err := calibration.Images([]string{filepath.Join(data, "train", "good")}, 0)
	if err != nil {
		return nil, err
	}
	if len(all) < n+1 {
		return nil, fmt.Errorf("--frr-subsets: %d good training images, need more than %d to draw subsets", len(all), n)
	}
	var good []string
	for _, t := range tests {
		if t.class == "good" {
			good = append(good, t.path)
		}
	}
	check := &FRRCheck{Subsets: k, Images: n, Good: len(good)}
	byTarget := map[float64]*FRRCheckPoint{}
	var order []float64
	for s := 0; s < k; s++ {
		rng := rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(1000+s)))
		var files []string
		for _, i := range rng.Perm(len(all))[:n] {
			files = append(files, all[i])
		}
		imgs, used, err := calibration.LoadImages(files, cfg.ROI)
		if err != nil {
			return nil, err
		}
		res, err := calibration.Calibrate(ctx, ex, backbone, imgs, used, cfg, nil)
		for _, m := range imgs {
			m.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("subset %d: %w", s+1, err)
		}
		in, err := pipeline.NewInspector(model.FromTensors(res.Manifest, res.Tensors), ex, sha)
		if err != nil {
			return nil, err
		}
		scores := make([]float64, 0, len(good))
		for _, p := range good {
			img, err := imageops.ReadFile(p)
			if err != nil {
				return nil, err
			}
			r, err := in.Inspect(ctx, img, false)
			img.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			scores = append(scores, r.Score)
		}
		th := res.Manifest.Threshold
		rows := append([]model.ThresholdRow{{TargetFRR: th.TargetFRR, Threshold: th.Value, PredictedFRR: th.PredictedFRR}}, th.Table...)
		for _, row := range rows {
			pt := byTarget[row.TargetFRR]
			if pt == nil {
				pt = &FRRCheckPoint{TargetFRR: row.TargetFRR}
				byTarget[row.TargetFRR] = pt
				order = append(order, row.TargetFRR)
			} else if len(pt.Measured) > s {
				continue // the target is also a table row
			}
			pt.Measured = append(pt.Measured, shareAbove(scores, row.Threshold))
			pt.PredictedMean += row.PredictedFRR / float64(k)
		}
		fmt.Fprintf(stderr, "eval: FRR check, subset %d/%d calibrated and scored\n", s+1, k)
	}
	for _, f := range order {
		pt := byTarget[f]
		pt.MeasuredMean, pt.MeasuredMedian = evalstats.Mean(pt.Measured), evalstats.Median(pt.Measured)
		check.Points = append(check.Points, *pt)
	}
	return check, nil
}

func printFRRCheck(w io.Writer, c *FRRCheck) {
	if c == nil {
		return
	}
	for _, p := range c.Points {
		fmt.Fprintf(w, "  FRR check over %d calibrations on %d random good images (%d good test parts): target %.1f%%, predicted %.2f%%, measured mean %.2f%% (median %.2f%%)\n",
			c.Subsets, c.Images, c.Good, 100*p.TargetFRR, 100*p.PredictedMean, 100*p.MeasuredMean, 100*p.MeasuredMedian)
	}
}
