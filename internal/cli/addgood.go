package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/model"
)

// maxAddGood bounds the parts one add-good call reads into memory.
const maxAddGood = 256

func runAddGood(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("add-good", `Usage: inspectd add-good --model MODEL [--out OUT] IMAGE|DIR...

Teaches a patch model (patchcore) parts that an operator confirmed good, for
example parts it rejected: their patches that are new to the memory bank join
it, and the model is written as a new version. The threshold and the position
norm stay as calibrated. Without --out the model is replaced in place and the
previous version kept as MODEL.prev (roll back: mv MODEL.prev MODEL, then
reload the daemon). The daemon does the same on the feedback topic
(INSPECTD_LEARN_GOOD).

Flags:
`)
	modelPath := fs.String("model", "", "model file from 'inspectd calibrate'")
	out := fs.String("out", "", "where to write the new version (default: replace --model, keeping MODEL.prev)")
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
	if len(files) > maxAddGood {
		return fmt.Errorf("%d images: add at most %d at once (or recalibrate with them among the good parts)", len(files), maxAddGood)
	}
	m, err := model.Load(*modelPath)
	if err != nil {
		return err
	}
	in, closeFn, err := openModel(*modelPath)
	if err != nil {
		return err
	}
	defer closeFn()
	var parts []gocv.Mat
	defer func() {
		for _, p := range parts {
			p.Close()
		}
	}()
	for _, f := range files {
		img, err := imageops.ReadFile(f)
		if err != nil {
			return err
		}
		parts = append(parts, img)
	}
	man, tensors, added, err := in.AddGood(ctx, m, parts)
	if err != nil {
		return err
	}
	dst, save := *out, model.Save
	if dst == "" || dst == *modelPath {
		dst, save = *modelPath, model.SaveVersion
	}
	if err := save(dst, man, tensors); err != nil {
		return err
	}
	nm, err := model.Load(dst)
	if err != nil {
		return errors.Join(errors.New("the new version does not load back"), err)
	}
	fmt.Fprintf(stdout, "wrote %s: model %s (from %s), %d confirmed-good parts added %d patches to the bank; %d confirmed since calibration\n",
		dst, nm.Manifest.ID, m.Manifest.ID, len(parts), added, nm.Manifest.Training.ConfirmedGood)
	if dst == *modelPath {
		fmt.Fprintf(stdout, "  previous version kept as %s%s\n", dst, model.PrevSuffix)
	}
	return nil
}
