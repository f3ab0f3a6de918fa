package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/engine/tiny"
	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/internal/testenv"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/synth"
)

// The README's first command runs this; with the tiny backbone it checks the
// whole chain (calibration, embedded broker, daemon, subscriber, summary)
// quickly, without the pretrained network.
func TestDemoChain(t *testing.T) {
	ort := testenv.RequireORT(t)
	dir := t.TempDir()
	backbone := filepath.Join(dir, "tiny.onnx")
	if err := tiny.WriteFile(backbone, 1); err != nil {
		t.Fatal(err)
	}
	t.Setenv("INSPECTD_BACKBONE", backbone)
	t.Setenv("INSPECTD_ORT_LIB", ort)
	video := filepath.Join(dir, "line.avi")
	const frames, every = 30, 5
	if err := synth.WriteVideo(video, frames, 10, 96, every, 3); err != nil {
		t.Fatal(err)
	}
	cfg := calibration.Defaults()
	cfg.Features = features.Config{Taps: []string{tiny.Tap1, tiny.Tap2}, Scales: []int{64, 32}, Mean: features.ImageNetMean, Std: features.ImageNetStd}
	cfg.Method, cfg.TrainViews, cfg.TestViews, cfg.Folds = model.Gaussian, 2, 2, 2
	cfg.Backbone = backbone
	for _, spb := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "json+sparkplug"}[spb], func(t *testing.T) { demoChain(t, video, frames, every, cfg, spb) })
	}
}

func demoChain(t *testing.T, video string, frames, every int, cfg calibration.Config, spb bool) {
	var out bytes.Buffer
	sum, err := Run(context.Background(), Options{Video: video, DefectEvery: every, Calibrate: 10, Out: filepath.Join(t.TempDir(), "out"), Version: "test", Calib: cfg, Sparkplug: spb},
		&out, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if sum.Events != frames {
		t.Errorf("%d events for %d frames", sum.Events, frames)
	}
	if sum.Heatmaps != sum.Defects {
		t.Errorf("%d heatmaps for %d defect verdicts", sum.Heatmaps, sum.Defects)
	}
	if sum.TruePositives+sum.Missed != frames/every {
		t.Errorf("summary counts %d real defects; the video has %d", sum.TruePositives+sum.Missed, frames/every)
	}
	if !strings.Contains(out.String(), "demo summary: 30 parts inspected") {
		t.Errorf("no summary line in:\n%s", out.String())
	}
	// With --sparkplug the stream is printed: births, a DDATA per part
	// (names resolved from the birth's aliases), deaths at the end. The
	// video starts as the daemon does, so the first parts may be inspected
	// before the node is born; Sparkplug B carries those in the DBIRTH's
	// current values, not as DDATA. Every part from the first DDATA on has
	// its own, up to the last.
	births := strings.Count(out.String(), "sparkplug NBIRTH seq   0")
	data := strings.Count(out.String(), "Inspection/Verdict=")
	first := 0
	if m := regexp.MustCompile(`Inspection/Seq=(\d+)`).FindStringSubmatch(out.String()); m != nil {
		first, _ = strconv.Atoi(m[1])
	}
	want := frames - max(first-1, 0)
	last := fmt.Sprintf("Inspection/Seq=%d ", frames)
	if spb && (births != 1 || first < 1 || data != want || !strings.Contains(out.String(), last) ||
		!strings.Contains(out.String(), "sparkplug NDEATH") || !strings.Contains(out.String(), "1 NBIRTH, 1 NDEATH")) {
		t.Errorf("Sparkplug stream: %d NBIRTH, %d inspection DDATA from part %d (want 1, %d, and one for part %d):\n%s", births, data, first, want, frames, out.String())
	}
	if !spb && births+data > 0 {
		t.Errorf("Sparkplug stream without --sparkplug")
	}
}
