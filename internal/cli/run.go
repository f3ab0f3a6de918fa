package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/daemon"
	"github.com/inspectd/inspectd/internal/logging"
)

func runDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: inspectd run\n\nThe daemon: inspects camera frames with a calibrated model and publishes events\nover MQTT. One instance per camera. All settings come from the environment:\n\n")
		config.Usage(fs.Output(), &config.Daemon{})
		fmt.Fprintf(fs.Output(), "\nSignals: SIGHUP reloads INSPECTD_MODEL (a bad model is refused, the old one keeps\nrunning); SIGTERM finishes the inspection in flight, flushes events and exits.\n")
		fmt.Fprintf(fs.Output(), "\nSCADA dialects (beside the JSON topics, each off by default): INSPECTD_SPARKPLUG=true makes\nthe daemon a Sparkplug B edge node (commands by DCMD: Config/Threshold, Config/Inspection\nEnabled, Device Control/Rebirth; NCMD Node Control/Rebirth); INSPECTD_HOMEASSISTANT=true\npublishes Home Assistant MQTT discovery. INSPECTD_COMMANDS=true accepts commands on\n<prefix>/<camera>/threshold/set (a number), inspection/set (ON, OFF) and model/set (RELOAD),\nwith their retained .../state. See the README's MQTT section.\n")
	}
	fs.SetOutput(stdout)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return errUsage
	}
	cfg, err := config.LoadDaemon()
	if err != nil {
		return configError{err}
	}
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	format := logging.Resolve(logging.Format(cmp.Or(cfg.LogFormat, "auto")), os.Getenv("JOURNAL_STREAM"), stderr)
	log := logging.New(stderr, format, level).With("camera", cfg.Camera)
	if err := checkWritableDir(cfg.SpoolDir); err != nil {
		return configError{fmt.Errorf("spool directory (INSPECTD_SPOOL_DIR): %w", err)}
	}
	// SIGHUP is ignored from the start of Main until daemon.New installs
	// the reload handler, so a reload requested now cannot kill the process.
	log.Info("inspectd starting", "version", Version, "model", cfg.Model)
	d, err := daemon.New(ctx, cfg, log, Version)
	if errors.Is(err, daemon.ErrListen) {
		// Restarting cannot free the port another instance holds: without
		// exit 78 the unit would restart forever.
		return configError{err}
	}
	if err != nil {
		return err
	}
	log.Info("inspectd running", "source", cfg.Source, "model", cfg.Model, "broker", cfg.Broker)
	return d.Run(ctx)
}

// checkWritableDir makes dir if needed and proves it writable by creating
// and removing a file in it (permission bits do not tell: a read-only mount,
// ProtectSystem=strict or a full quota refuse a root process too).
func checkWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("not writable: %w", err)
	}
	f.Close()
	return os.Remove(f.Name())
}
