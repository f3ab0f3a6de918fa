package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/pipeline"
)

// ScoreLine is the JSON line `inspectd score` prints per image.
type ScoreLine struct {
	Image     string  `json:"image"`
	Score     float64 `json:"score"`
	Threshold float64 `json:"threshold"`
	Verdict   string  `json:"verdict"`
	Millis    float64 `json:"ms"`
	Heatmap   string  `json:"heatmap,omitempty"`
	Error     string  `json:"error,omitempty"`
	// OffShape: the part's shape lies outside the good parts' (why); it
	// is scored all the same.
	OffShape string `json:"off_shape,omitempty"`
}

func runScore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("score", "Usage: inspectd score --model MODEL [flags] IMAGE|DIR...\n\nPrints one JSON line per image: score, threshold, verdict (ok/defect), ms, and off_shape\nwhen the part's aspect ratio lies outside the good parts' (it is scored all the same).\n\nFlags:\n")
	modelPath := fs.String("model", "", "model file from 'inspectd calibrate'")
	heatDir := fs.String("heatmap", "", "directory for heatmap overlays (JPEG, one per image)")
	T := fs.Int("transforms", 0, "override T, the transformations per image (0: the model's)")
	thr := fs.Float64("threshold", 0, "override the model's decision threshold (0: the model's)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *modelPath == "" || fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("%w: --model and at least one image are required", errUsage)
	}
	files, err := calibration.Images(fs.Args(), 0)
	if err != nil {
		return err
	}
	if *heatDir != "" {
		if err := os.MkdirAll(*heatDir, 0o755); err != nil {
			return fmt.Errorf("heatmap directory: %w", err)
		}
	}
	in, closeFn, err := openModel(*modelPath)
	if err != nil {
		return err
	}
	defer closeFn()
	if *T > 0 {
		in.SetTransforms(*T)
	}
	if *thr > 0 {
		in.SetThreshold(*thr)
	}
	enc := json.NewEncoder(stdout)
	failed := 0
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		line := ScoreLine{Image: f}
		if err := scoreOne(ctx, in, f, *heatDir, &line); err != nil {
			line.Error = err.Error()
			failed++
		}
		if err := enc.Encode(line); err != nil {
			return fmt.Errorf("writing the result for %s: %w", f, err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d images could not be scored", failed, len(files))
	}
	return nil
}

func scoreOne(ctx context.Context, in *pipeline.Inspector, file, heatDir string, line *ScoreLine) error {
	img, err := imageops.ReadFile(file)
	if err != nil {
		return err
	}
	defer img.Close()
	res, err := in.Inspect(ctx, img, heatDir != "")
	if err != nil {
		return err
	}
	line.Score, line.Threshold, line.OffShape = res.Score, res.Threshold, res.OffShape
	line.Verdict = "ok"
	if res.Defect {
		line.Verdict = "defect"
	}
	line.Millis = float64(res.Elapsed.Microseconds()) / 1000
	if heatDir == "" {
		return nil
	}
	ov, err := in.Overlay(img, res.Heat)
	if err != nil {
		return err
	}
	defer ov.Close()
	jpg, err := imageops.EncodeJPEG(ov, 90)
	if err != nil {
		return err
	}
	// The parent folder is part of the name: data sets reuse file names per
	// class folder (test/crack/000.png, test/hole/000.png).
	name := filepath.Base(filepath.Dir(file)) + "_" + strings.TrimSuffix(filepath.Base(file), filepath.Ext(file)) + "_heatmap.jpg"
	line.Heatmap = filepath.Join(heatDir, name)
	return imageops.WriteFileAtomic(line.Heatmap, jpg)
}
