package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/synth"
)

// runSynth writes the project's synthetic parts: an MVTec AD layout data set
// with defect masks and a sample camera video. The demo and tests use them;
// nothing from ../shared is needed. With --on-real it instead draws small
// defects on the user's own good images, a development set with pixel
// ground truth for defects too small for one pooled vector per image.
func runSynth(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("synth", "Usage: inspectd synth --out DIR [flags]\n   or: inspectd synth --on-real DIR|FILE... --out DIR [--train N] [--test-good N] [--per-kind N] [--seed S]\n\n"+
		"Writes synthetic parts with defects: DIR/parts (MVTec AD layout with masks) and\nDIR/line.avi (a camera video of parts passing, every --defect-every-th defective).\n\n"+
		"With --on-real, writes DIR itself in MVTec AD layout from real good images (a directory\nor files; further arguments are files too, used in name order): train/good and test/good\n"+
		"are good images as given, test/{spot,scratch,crack,dent} are further good images with one\nsmall defect each (under 1% of the image) and ground_truth/ holds their masks.\n"+
		"Needs train + test-good + 4 x per-kind good images; no image is used twice.\n\nFlags:\n")
	out := fs.String("out", "", "output directory")
	var onReal multiFlag
	fs.Var(&onReal, "on-real", "draw small defects on these good images: a directory or an image file (repeatable)")
	size := fs.Int("size", 256, "image size in pixels (synthetic parts)")
	train := fs.Int("train", 16, "good training parts")
	testGood := fs.Int("test-good", 0, "good test parts (default 12; 40 with --on-real)")
	perKind := fs.Int("per-kind", 0, "defective test parts per defect kind (default 4; 20 with --on-real)")
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
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if len(onReal) > 0 || len(fs.Args()) > 0 {
		if len(onReal) == 0 {
			fs.Usage()
			return fmt.Errorf("%w: unexpected arguments %v (image files go with --on-real)", errUsage, fs.Args())
		}
		if !set["test-good"] {
			*testGood = 40
		}
		if !set["per-kind"] {
			*perKind = 20
		}
		return synthOnReal(append(onReal, fs.Args()...), *out, *train, *testGood, *perKind, *seed, stdout)
	}
	if !set["test-good"] {
		*testGood = 12
	}
	if !set["per-kind"] {
		*perKind = 4
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

// synthOnReal writes the small-defects set of WriteDatasetOnReal from the
// good images named by args.
func synthOnReal(args []string, out string, train, testGood, perKind int, seed int64, stdout io.Writer) error {
	files, err := calibration.Images(args, 0)
	if err != nil {
		return err
	}
	if err := synth.WriteDatasetOnReal(out, files, train, testGood, perKind, seed); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s from %d of %d good images (%d train, %d good and %d defective test images with masks: %d each of %v)\n",
		out, train+testGood+perKind*len(synth.SmallKinds), len(files), train, testGood, perKind*len(synth.SmallKinds), perKind, synth.SmallKinds)
	return nil
}
