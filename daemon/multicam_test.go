package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon"
	"github.com/inspectd/inspectd/engine/tiny"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/internal/cli"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/synth"
)

// camera is the configuration of a second, third... camera on the same host,
// as its own env file and the unit's %i would give it: its own camera id
// (hence client id and topics), spool, state and metrics port.
func camera(base config.Daemon, dir, name, hot string) config.Daemon {
	c := base
	c.Camera, c.ClientID = name, ""
	c.Source = "dir:" + hot
	c.SpoolDir = filepath.Join(dir, name, "spool")
	c.StateDir = filepath.Join(dir, name)
	if err := c.Validate(); err != nil {
		panic(err)
	}
	return c
}

// Two daemons on one host and one broker: each publishes its own parts on
// its own topics, neither knocks the other off the broker (a shared client
// id would: the broker would publish the loser's will, "offline"), and a
// third left on the first one's metrics port fails at once with the
// setting to fix, before it touches the broker or the camera.
func TestTwoCamerasOneBroker(t *testing.T) {
	f := newFixture(t, 11)
	base := f.config(t, "dir:"+filepath.Join(f.dir, "unused"))
	hot0, hot1 := filepath.Join(f.dir, "hot0"), filepath.Join(f.dir, "hot1")
	parts0, parts1 := dropParts(t, hot0, 0, 4), dropParts(t, hot1, 10, 4)
	sub0, sub1 := subscribe(t, f.broker.URL(), "cam0"), subscribe(t, f.broker.URL(), "cam1")
	d0, stop0 := startDaemon(t, camera(base, f.dir, "cam0", hot0))
	d1, stop1 := startDaemon(t, camera(base, f.dir, "cam1", hot1))

	for _, c := range []struct {
		name  string
		sub   *subscriber
		parts []string
	}{{"cam0", sub0, parts0}, {"cam1", sub1, parts1}} {
		events := c.sub.waitEvents(t, len(c.parts), 60*time.Second)
		var got []string
		for _, ev := range events {
			if ev.Camera != c.name {
				t.Errorf("%s's topic carried an event of camera %q", c.name, ev.Camera)
			}
			got = append(got, ev.PartID)
		}
		slices.Sort(got)
		if !slices.Equal(got, c.parts) {
			t.Errorf("%s: events for %v; want exactly its parts %v", c.name, got, c.parts)
		}
	}
	if d0.HTTPAddr() == "" || d0.HTTPAddr() == d1.HTTPAddr() {
		t.Errorf("metrics addresses %q and %q", d0.HTTPAddr(), d1.HTTPAddr())
	}
	for _, d := range []*daemon.Daemon{d0, d1} {
		if !strings.Contains(metricsText(t, d.HTTPAddr()), "inspectd_frames_total 4") {
			t.Errorf("%s: /metrics does not count its own 4 frames", d.HTTPAddr())
		}
	}

	// A copy of cam0's env file for cam2 that kept cam0's port.
	clash := camera(base, f.dir, "cam2", filepath.Join(f.dir, "hot2"))
	clash.HTTPAddr = d0.HTTPAddr()
	_, err := daemon.New(context.Background(), clash, quietLog(), "test")
	if !errors.Is(err, daemon.ErrListen) || !strings.Contains(err.Error(), "INSPECTD_HTTP_ADDR="+d0.HTTPAddr()) {
		t.Fatalf("third daemon on cam0's port: %v; want ErrListen naming INSPECTD_HTTP_ADDR", err)
	}

	for _, c := range []struct {
		name string
		sub  *subscriber
		d    *daemon.Daemon
	}{{"cam0", sub0, d0}, {"cam1", sub1, d1}} {
		c.sub.mu.Lock()
		avail := slices.Clone(c.sub.avail)
		c.sub.mu.Unlock()
		if slices.Contains(avail, "offline") || c.sub.lastAvail() != "online" {
			t.Errorf("%s availability %v while running; want online only (no client knocked off)", c.name, avail)
		}
		if st := c.d.Status(); st.State != "running" {
			t.Errorf("%s state %q", c.name, st.State)
		}
	}
	stop0()
	stop1()
}

// The documented sequence for recalibrating a camera whose service runs:
// calibrate --camera is refused while the daemon holds the camera (it would
// take the daemon's parts), and the daemon goes on undisturbed; stop,
// calibrate, start: the daemon runs the new model.
func TestCalibrateWhileServiceRuns(t *testing.T) {
	f := newFixture(t, 12)
	hot := filepath.Join(f.dir, "hot")
	dropParts(t, hot, 0, 2)
	sub := subscribe(t, f.broker.URL(), "cam0")
	cfg := f.config(t, "dir:"+hot)
	d, stop := startDaemon(t, cfg)
	sub.waitEvents(t, 2, 60*time.Second)
	oldID := d.Status().ModelID

	newModel := filepath.Join(f.dir, "new.zip")
	calibrate := func() (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := cli.Main([]string{"calibrate", "--camera", "--count", "8", "--out", newModel,
			"--backbone", f.backbone, "--taps", tiny.Tap1 + "," + tiny.Tap2, "--scales", "64,32", "--method", "gaussian",
			"--train-views", "2", "--transforms", "2", "--folds", "2", "--seed", "5"}, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	code, _, stderr := calibrate()
	if code == 0 || !strings.Contains(stderr, "in use by another process") || !strings.Contains(stderr, "systemctl stop inspectd@cam0") {
		t.Fatalf("calibrate --camera while the daemon runs: exit %d, %q; want refused with the stop/calibrate/start sequence", code, stderr)
	}
	if _, err := os.Stat(newModel); err == nil {
		t.Fatal("a refused calibration wrote a model")
	}
	// The daemon kept its camera and its connection.
	dropParts(t, hot, 2, 2)
	sub.waitEvents(t, 4, 60*time.Second)
	if sub.lastAvail() != "online" {
		t.Fatalf("daemon availability %q after the refused calibration", sub.lastAvail())
	}

	stop()
	for i := 0; i < 8; i++ {
		dropImage(t, filepath.Join(hot, fmt.Sprintf("good%02d.png", i)), synth.Good(int64(500+i), partSize))
	}
	code, stdout, stderr := calibrate()
	if code != 0 {
		t.Fatalf("calibrate --camera with the service stopped: exit %d\n%s\n%s", code, stdout, stderr)
	}
	m, err := model.Load(newModel)
	if err != nil {
		t.Fatal(err)
	}
	if m.Manifest.ID == oldID {
		t.Fatal("the new calibration has the old model's id")
	}
	// Installed where the unit's INSPECTD_MODEL points, then started.
	data, _ := os.ReadFile(newModel)
	if err := imageops.WriteFileAtomic(cfg.Model, data); err != nil {
		t.Fatal(err)
	}
	dropParts(t, hot, 4, 2)
	d2, _ := startDaemon(t, cfg)
	events := sub.waitEvents(t, 6, 60*time.Second)
	if d2.Status().ModelID != m.Manifest.ID || events[len(events)-1].ModelID != m.Manifest.ID {
		t.Errorf("after restart: status model %s, last event's %s; want the new %s", d2.Status().ModelID, events[len(events)-1].ModelID, m.Manifest.ID)
	}
}
