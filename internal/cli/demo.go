package cli

import (
	"context"
	"io"
	"log/slog"

	"github.com/inspectd/inspectd/internal/demo"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "Usage: inspectd demo [flags]\n\nThe embedded default: calibrates on the good frames of a sample camera video,\nstarts an MQTT broker in-process, runs the daemon on the video, prints the events a\nsubscriber receives, saves the heatmaps, and ends with a summary.\n\nFlags:\n")
	video := fs.String("video", "testdata/line.avi", "sample camera video (made by 'inspectd synth')")
	every := fs.Int("defect-every", 5, "the video's recipe: every N-th part is defective")
	n := fs.Int("calibrate", 16, "good frames used for calibration")
	out := fs.String("out", "out/demo", "output directory")
	spb := fs.Bool("sparkplug", false, "also run the daemon as a Sparkplug B edge node and print that stream")
	cfgFn := calibFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := cfgFn()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	_, err = demo.Run(ctx, demo.Options{Video: *video, DefectEvery: *every, Calibrate: *n, Out: *out, Version: Version, Calib: cfg, Sparkplug: *spb}, stdout, log)
	return err
}
