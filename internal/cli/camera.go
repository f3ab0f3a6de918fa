package cli

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"gocv.io/x/gocv"
	"golang.org/x/term"

	"github.com/inspectd/inspectd/alerts"
	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/capture"
	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/progress"
)

// captureGood takes count good parts from the configured camera
// (INSPECTD_SOURCE), one per trigger: every interval, else Enter on a
// terminal, else a message on the calibration's own MQTT trigger topic
// (INSPECTD_TRIGGER=mqtt; see openCalibrationTrigger).
// Each capture is also saved under saveDir, so the calibration set can be
// audited and reused with --good.
func captureGood(ctx context.Context, count int, interval time.Duration, roi, saveDir string, stdin io.Reader, stderr io.Writer) ([]gocv.Mat, []string, error) {
	dc, err := config.LoadDaemon()
	if err != nil {
		return nil, nil, err
	}
	kind, _, _ := capture.ParseURI(dc.Source)
	src, err := capture.Open(ctx, capture.Config{URI: dc.Source, StallTimeout: dc.StallTimeout})
	if errors.Is(err, capture.ErrBusy) {
		// The daemon of this camera holds it: taking its frames (or its
		// hot folder's parts) would leave parts uninspected.
		return nil, nil, fmt.Errorf("camera: %w: stop the service of this camera first, calibrate, then start it with the new model:\n"+
			"  systemctl stop inspectd@%s\n  inspectd calibrate --camera --out <INSPECTD_MODEL> ...\n  systemctl start inspectd@%s", err, dc.Camera, dc.Camera)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("camera: %w", err)
	}
	defer src.Close()

	var wait func() error
	isTerm := false
	if f, ok := stdin.(*os.File); ok {
		isTerm = term.IsTerminal(int(f.Fd()))
	}
	switch {
	case kind == capture.KindHotFolder:
		wait = func() error { return nil } // each file is one part
	case interval > 0:
		wait = func() error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(interval):
				return nil
			}
		}
	case isTerm:
		in := bufio.NewReader(stdin)
		wait = func() error {
			fmt.Fprint(stderr, "place a good part and press Enter ")
			_, err := in.ReadString('\n')
			return err
		}
	case dc.Trigger == "mqtt":
		pub, closePub, err := openCalibrationTrigger(ctx, dc)
		if err != nil {
			return nil, nil, err
		}
		defer closePub()
		pub.SetStatus(alerts.Status{State: alerts.StateCalibrating, Version: Version})
		fmt.Fprintf(stderr, "waiting for triggers on %s\n", pub.Topics().Trigger)
		wait = func() error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-pub.Trigger():
				return nil
			}
		}
	default:
		return nil, nil, fmt.Errorf("calibrate --camera needs a trigger: --interval, a terminal (Enter), or INSPECTD_TRIGGER=mqtt")
	}
	if err := os.MkdirAll(saveDir, 0o755); err != nil {
		return nil, nil, err
	}
	r, err := imageops.ParseOptionalROI(roi)
	if err != nil {
		return nil, nil, err
	}
	bar := progress.New(stderr, count, "capture", progress.WithTerminal(isTerm))
	defer bar.Done()
	var mats []gocv.Mat
	var names []string
	fail := func(err error) ([]gocv.Mat, []string, error) {
		for _, m := range mats {
			m.Close()
		}
		return nil, nil, err
	}
	for len(mats) < count {
		if err := wait(); err != nil {
			return fail(err)
		}
		fr, err := src.Next(ctx)
		if err != nil {
			return fail(fmt.Errorf("camera: %w", err))
		}
		part := fr.Mat
		if !r.Empty() {
			part, err = imageops.Crop(fr.Mat, r)
			fr.Mat.Close()
			if err != nil {
				return fail(err)
			}
		}
		png, err := imageops.EncodePNG(part)
		name := filepath.Join(saveDir, fmt.Sprintf("good-%03d.png", len(mats)))
		if err == nil {
			err = imageops.WriteFileAtomic(name, png)
		}
		if err != nil {
			part.Close()
			return fail(fmt.Errorf("saving captured part: %w", err))
		}
		src.Ack(fr)
		mats = append(mats, part)
		names = append(names, name)
		bar.Add(1)
	}
	if len(mats) < calibration.MinImages {
		return fail(fmt.Errorf("calibration needs at least %d parts, --count is %d", calibration.MinImages, count))
	}
	return mats, names, nil
}

// calibrationCamera is the topic level under <prefix>/<camera>/ that is the
// calibration's own sub-tree: its trigger, status and availability topics.
const calibrationCamera = "calibrate"

// openCalibrationTrigger connects a calibration to the broker for its
// triggers, on <prefix>/<camera>/calibrate/trigger as client
// <client id>-calibrate (default inspectd-<camera>-calibrate).
//
// The daemon of the same camera may be running: with its trigger topic the
// calibration would take the PLC's part triggers (and the daemon the
// calibration's), with its client id the broker would disconnect the daemon,
// and with its spool directory the spool lock would refuse the calibration.
// Its retained status and availability go to the calibration's sub-tree, so
// they do not overwrite the daemon's. The calibration publishes no events:
// its spool is a temporary directory, removed by the returned close.
func openCalibrationTrigger(ctx context.Context, dc config.Daemon) (*alerts.Publisher, func(), error) {
	spool, err := os.MkdirTemp("", "inspectd-calibrate-spool-")
	if err != nil {
		return nil, nil, fmt.Errorf("MQTT trigger: spool directory: %w", err)
	}
	prefix := cmp.Or(dc.TopicPrefix, alerts.DefaultTopicPrefix)
	pc := daemon.PublisherConfig(dc, nil)
	pc.TopicPrefix, pc.Camera, pc.ClientID, pc.SpoolDir = prefix+"/"+dc.Camera, calibrationCamera, calibrationClientID(dc), spool
	// A calibration takes no commands and sends no events.
	pc.Commands, pc.SpoolMaxBytes = false, 0
	pub, err := alerts.New(ctx, pc)
	if err != nil {
		os.RemoveAll(spool)
		return nil, nil, fmt.Errorf("MQTT trigger: %w", err)
	}
	return pub, func() {
		pub.Close(context.WithoutCancel(ctx))
		os.RemoveAll(spool)
	}, nil
}

// calibrationClientID is the daemon's client id with -calibrate appended:
// never the daemon's own, which would knock the running daemon off the broker.
func calibrationClientID(dc config.Daemon) string {
	return cmp.Or(dc.ClientID, "inspectd-"+dc.Camera) + "-" + calibrationCamera
}
