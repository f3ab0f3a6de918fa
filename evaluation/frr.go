package evaluation

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"

	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/evalstats"
	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/operating"
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
	// Line is each calibration's simulated line with refinement on, over
	// the parts after the 100th (medians over ten shuffles): whether the
	// line corrects a draw's threshold, whichever way it is off.
	Line []FRRLine `json:"line,omitempty"`
	// AUROC is each calibration's image AUROC on the whole test set: one
	// draw of sixteen parts can sit a few hundredths from another, so a
	// comparison of methods is made on the same draws.
	AUROC []float64 `json:"image_auroc,omitempty"`
}

// FRRLine is one calibration's simulated line after its 100th part.
type FRRLine struct {
	FRR         float64 `json:"false_reject_rate"`
	Catch       float64 `json:"catch_rate"`
	OracleCatch float64 `json:"oracle_catch_rate"`
	// The same parts at the calibrated threshold (refinement off).
	StaticFRR   float64 `json:"static_false_reject_rate"`
	StaticCatch float64 `json:"static_catch_rate"`
	// The same line with every rejected part checked by a person.
	ReviewedFRR         float64 `json:"reviewed_false_reject_rate"`
	ReviewedCatch       float64 `json:"reviewed_catch_rate"`
	ReviewedOracleCatch float64 `json:"reviewed_oracle_catch_rate"`
	// RejectsHigh is in how many of the shuffles the reject-rate check went on.
	RejectsHigh int     `json:"rejects_high_lines"`
	Lines       int     `json:"lines"`
	TargetFRR   float64 `json:"target_frr"`
}

// frrLineSeeds are the shuffles of each calibration's simulated line.
var frrLineSeeds = lineSeeds[:10]

// frrLineAfter is the checkpoint the per-calibration line reports after.
const frrLineAfter = 100

// FRRCheckPoint summarises one target rate over the subsets.
type FRRCheckPoint struct {
	TargetFRR      float64   `json:"target_frr"`
	PredictedMean  float64   `json:"predicted_frr_mean"`
	MeasuredMean   float64   `json:"measured_frr_mean"`
	MeasuredMedian float64   `json:"measured_frr_median"`
	Measured       []float64 `json:"measured_frr"`
	// Caught is each calibration's share of defective test parts above its
	// threshold, and OracleCaught the share a threshold chosen with
	// hindsight at that calibration's measured rate would catch: one draw's
	// catch rate says as little as one draw's false-reject rate.
	CaughtMean       float64   `json:"caught_mean"`
	CaughtMedian     float64   `json:"caught_median"`
	Caught           []float64 `json:"caught"`
	OracleCaughtMean float64   `json:"oracle_caught_mean"`
}

// frrSubsets calibrates on k random draws of n good training images and
// measures each calibration's thresholds (its target and the 1/2/5% table)
// on the test parts: false rejects of the good ones, catches of the others.
func frrSubsets(ctx context.Context, ex *features.Extractor, backbone, sha, data string, n, k int, cfg calibration.Config, tests []testImage, lineDefects float64, stderr io.Writer) (*FRRCheck, error) {
	all, err := calibration.Images([]string{filepath.Join(data, "train", "good")}, 0)
	if err != nil {
		return nil, err
	}
	if len(all) < n+1 {
		return nil, fmt.Errorf("--frr-subsets: %d good training images, need more than %d to draw subsets", len(all), n)
	}
	nGood := 0
	for _, t := range tests {
		if t.class == "good" {
			nGood++
		}
	}
	check := &FRRCheck{Subsets: k, Images: n, Good: nGood}
	byTarget := map[float64]*FRRCheckPoint{}
	var order []float64
	for s := 0; s < k; s++ {
		rng := rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(1000+s)))
		var files []string
		for _, i := range rng.Perm(len(all))[:n] {
			files = append(files, all[i])
		}
		imgs, used, err := calibration.LoadImages(files, cfg.ROI, cfg.ImageMemory)
		if err != nil {
			return nil, err
		}
		res, err := calibration.Calibrate(ctx, ex, backbone, imgs, used, cfg, nil)
		imageops.CloseAll(imgs)
		if err != nil {
			return nil, fmt.Errorf("subset %d: %w", s+1, err)
		}
		in, err := pipeline.NewInspector(model.FromTensors(res.Manifest, res.Tensors), ex, sha)
		if err != nil {
			return nil, err
		}
		var scores, bad []float64
		var parts []operating.Part
		for _, t := range tests {
			img, err := imageops.ReadFile(t.path)
			if err != nil {
				return nil, err
			}
			r, err := in.Inspect(ctx, img, false)
			img.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.path, err)
			}
			if t.class == "good" {
				scores = append(scores, r.Score)
			} else {
				bad = append(bad, r.Score)
			}
			parts = append(parts, operating.Part{Score: r.Score, Defect: t.class != "good"})
		}
		if len(bad) > 0 && len(scores) > 0 {
			all, labels := make([]float64, len(parts)), make([]bool, len(parts))
			for i, p := range parts {
				all[i], labels[i] = p.Score, p.Defect
			}
			auc, err := evalstats.AUROC(all, labels)
			if err != nil {
				return nil, fmt.Errorf("subset %d: %w", s+1, err)
			}
			check.AUROC = append(check.AUROC, auc)
		}
		if line, ok, err := lineAfter(parts, res.Manifest, lineDefects); err != nil {
			return nil, fmt.Errorf("subset %d: %w", s+1, err)
		} else if ok {
			check.Line = append(check.Line, line)
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
			pt.Measured = append(pt.Measured, evalstats.ShareAbove(scores, row.Threshold))
			pt.Caught = append(pt.Caught, evalstats.ShareAbove(bad, row.Threshold))
			pt.OracleCaughtMean += evalstats.OracleCatch(scores, bad, evalstats.CountAbove(scores, row.Threshold)) / float64(k)
			pt.PredictedMean += row.PredictedFRR / float64(k)
		}
		fmt.Fprintf(stderr, "eval: FRR check, subset %d/%d calibrated and scored\n", s+1, k)
	}
	for _, f := range order {
		pt := byTarget[f]
		pt.MeasuredMean, pt.MeasuredMedian = evalstats.Mean(pt.Measured), evalstats.Median(pt.Measured)
		pt.CaughtMean, pt.CaughtMedian = evalstats.Mean(pt.Caught), evalstats.Median(pt.Caught)
		check.Points = append(check.Points, *pt)
	}
	return check, nil
}

// lineAfter is the medians over frrLineSeeds of one calibration's simulated
// line after frrLineAfter parts; ok is false when the line is shorter or the
// model has no threshold to refine.
func lineAfter(parts []operating.Part, man model.Manifest, lineDefects float64) (FRRLine, bool, error) {
	if len(man.Training.GoodScores) < 3 || man.Threshold.Value <= 0 || man.Threshold.TargetFRR <= 0 {
		return FRRLine{}, false, nil
	}
	runs, err := simulateLines(parts, man, lineDefects, frrLineSeeds)
	if err != nil {
		return FRRLine{}, false, err
	}
	var refined, static, reviewed lineSeries
	high := 0
	for _, r := range runs {
		if r.RejectsHigh > 0 {
			high++
		}
		for _, c := range r.Checkpoints {
			if c.Parts == frrLineAfter {
				refined.add(c.AfterFRR, c.AfterCatch, c.AfterOracleCatch)
				static.add(c.StaticAfterFRR, c.StaticAfterCatch, 0)
				reviewed.add(c.ReviewedAfterFRR, c.ReviewedAfterCatch, c.ReviewedAfterOracleCatch)
			}
		}
	}
	if len(refined.frr) == 0 {
		return FRRLine{}, false, nil
	}
	return FRRLine{FRR: evalstats.Median(refined.frr), Catch: evalstats.Median(refined.catch), OracleCatch: evalstats.Median(refined.oracle),
		StaticFRR: evalstats.Median(static.frr), StaticCatch: evalstats.Median(static.catch),
		ReviewedFRR: evalstats.Median(reviewed.frr), ReviewedCatch: evalstats.Median(reviewed.catch), ReviewedOracleCatch: evalstats.Median(reviewed.oracle),
		RejectsHigh: high, Lines: len(runs), TargetFRR: man.Threshold.TargetFRR}, true, nil
}

// lineSeries gathers one kind of line figure (false rejects, catches, a
// hindsight threshold's catches) over shuffles or calibrations.
type lineSeries struct{ frr, catch, oracle []float64 }

func (s *lineSeries) add(frr, catch, oracle float64) {
	s.frr, s.catch, s.oracle = append(s.frr, frr), append(s.catch, catch), append(s.oracle, oracle)
}

func printFRRCheck(w io.Writer, c *FRRCheck) {
	if c == nil {
		return
	}
	if len(c.Line) > 0 {
		var refined, static, reviewed lineSeries
		for _, l := range c.Line {
			refined.add(l.FRR, l.Catch, l.OracleCatch)
			static.add(l.StaticFRR, l.StaticCatch, 0)
			reviewed.add(l.ReviewedFRR, l.ReviewedCatch, l.ReviewedOracleCatch)
		}
		fmt.Fprintf(w, "  FRR check, simulated line of each calibration (refinement on, %d shuffles each), parts after the %dth: false rejects mean %.2f%% (median %.2f%%, worst %.2f%%), caught mean %.1f%% (oracle at that FRR %.1f%%); without refinement %.2f%% (median %.2f%%, worst %.2f%%), caught %.1f%%\n",
			len(frrLineSeeds), frrLineAfter, 100*evalstats.Mean(refined.frr), 100*evalstats.Median(refined.frr), 100*slices.Max(refined.frr), 100*evalstats.Mean(refined.catch), 100*evalstats.Mean(refined.oracle),
			100*evalstats.Mean(static.frr), 100*evalstats.Median(static.frr), 100*slices.Max(static.frr), 100*evalstats.Mean(static.catch))
		// The reject-rate check against what it is for: lines rejecting
		// good parts beyond twice the target after the 100th part.
		var loose, looseOn, tight, tightOn int
		for _, l := range c.Line {
			if l.FRR > 2*l.TargetFRR {
				loose += l.Lines
				looseOn += l.RejectsHigh
			} else {
				tight += l.Lines
				tightOn += l.RejectsHigh
			}
		}
		fmt.Fprintf(w, "  FRR check, the reject-rate check on those lines: on in %d of %d shuffles of calibrations rejecting more than twice the target after the 100th part, in %d of %d of the others\n",
			looseOn, loose, tightOn, tight)
		fmt.Fprintf(w, "  FRR check, the same lines with every reject checked by a person (confirmed good or defect): false rejects mean %.2f%% (median %.2f%%, worst %.2f%%), caught mean %.1f%% (oracle at that FRR %.1f%%)\n",
			100*evalstats.Mean(reviewed.frr), 100*evalstats.Median(reviewed.frr), 100*slices.Max(reviewed.frr), 100*evalstats.Mean(reviewed.catch), 100*evalstats.Mean(reviewed.oracle))
	}
	if len(c.AUROC) > 0 {
		fmt.Fprintf(w, "  image AUROC over %d calibrations on %d random good images: mean %.4f, median %.4f, lowest %.4f, highest %.4f\n",
			len(c.AUROC), c.Images, evalstats.Mean(c.AUROC), evalstats.Median(c.AUROC), slices.Min(c.AUROC), slices.Max(c.AUROC))
	}
	for _, p := range c.Points {
		fmt.Fprintf(w, "  FRR check over %d calibrations on %d random good images (%d good test parts): target %.1f%%, predicted %.2f%%, measured mean %.2f%% (median %.2f%%); caught mean %.1f%% (median %.1f%%; oracle at each one's measured rate %.1f%%)\n",
			c.Subsets, c.Images, c.Good, 100*p.TargetFRR, 100*p.PredictedMean, 100*p.MeasuredMean, 100*p.MeasuredMedian,
			100*p.CaughtMean, 100*p.CaughtMedian, 100*p.OracleCaughtMean)
	}
}
