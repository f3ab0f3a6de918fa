package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/inspectd/inspectd/synth"
)

// runSynth writes the project's synthetic parts: an MVTec AD layout data set
// with defect masks and a sample camera video. The demo and tests use them;
// nothing from ../shared is needed.
func runSynth(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("synth", "Usage: inspectd synth --out DIR [flags]\n\nWrites synthetic parts with defects: DIR/parts (MVTec AD layout with masks) and\nDIR/line.avi (a camera video of parts passing, every --defect-every-th defective).\n\nFlags:\n")
	out := fs.String("out", "", "output directory")
	size := fs.Int("size", 256, "image size in pixels")
	train := fs.Int("train", 16, "good training parts")
	testGood := fs.Int("test-good", 12, "good test parts")
	perKind := fs.Int("per-kind", 4, "defective test parts per defect kind")
	frames := fs.Int("frames", 60, "frames of the sample video (0: no video)")
	every := fs.Int("defect-every", 5, "every N-th part in the video is defective")
	seed := fs.Int64("seed", 1, "random seed")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		fs.Usage()
		return fmt.Errorf("%w: --out is required", errUsage)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if *train+*testGood+*perKind > 0 {
		parts := filepath.Join(*out, "parts")
		if err := synth.WriteDataset(parts, *train, *testGood, *perKind, *size, *seed); err != nil {
			return fmt.Errorf("writing synthetic data set: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %s (%d train, %d good and %d defective test parts)\n", parts, *train, *testGood, *perKind*len(synth.Kinds))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if *frames > 0 {
		video := filepath.Join(*out, "line.avi")
		if err := synth.WriteVideo(video, *frames, 10, *size, *every, *seed+1); err != nil {
			return fmt.Errorf("writing sample video: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %s (%d frames)\n", video, *frames)
	}
	return nil
}
