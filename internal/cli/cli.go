// Package cli implements inspectd's subcommands; cmd/inspectd only calls Main.
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
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/engine"
	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/internal/logging"
	"github.com/inspectd/inspectd/internal/options"
	"github.com/inspectd/inspectd/internal/redact"
	"github.com/inspectd/inspectd/pipeline"
)

// Version is set at build time with -ldflags "-X .../internal/cli.Version=...".
var Version = "dev"

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "the daemon: camera frames to MQTT defect events (settings from the environment)", runDaemon},
		{"demo", "the embedded default: sample video, calibration, broker, daemon, subscriber, summary", runDemo},
		{"calibrate", "learn a model from good parts (16 is typical)", runCalibrate},
		{"score", "score images with a model: one JSON line each, optional heatmaps", runScore},
		{"add-good", "teach a patch model parts an operator confirmed good (a new model version)", runAddGood},
		{"eval", "calibrate and evaluate on a data set in MVTec AD layout", runEval},
		{"synth", "write synthetic parts with defects (data set and camera video)", runSynth},
		{"version", "print the version", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "inspectd %s: edge inspection with DifferNet\n\nUsage: inspectd <command> [flags]\n\nCommands:\n", Version)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'inspectd <command> --help' for its flags. Settings common to all\ncommands come from the environment:\n")
	config.Usage(w, &config.Runtime{})
}

// Main runs the command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	// Every log line goes through redact: no URL's password reaches the journal.
	// Every command honours INSPECTD_LOG_LEVEL and INSPECTD_LOG_FORMAT (the
	// daemon checks them again with its other settings); a bad value leaves
	// info, or text, for now.
	level := slog.LevelInfo
	if v := os.Getenv("INSPECTD_LOG_LEVEL"); v != "" {
		_ = level.UnmarshalText([]byte(v))
	}
	format := logging.Resolve(logging.Format(cmp.Or(os.Getenv("INSPECTD_LOG_FORMAT"), "auto")), os.Getenv("JOURNAL_STREAM"), stderr)
	slog.SetDefault(logging.New(stderr, format, level))
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "run" {
		// Until the daemon installs its SIGHUP handler (first thing in
		// daemon.New), a reload request must not kill the process, which is
		// the signal's default action.
		signal.Ignore(syscall.SIGHUP)
	}
	// Image limits apply to every command that reads images; a bad value is
	// reported by the command when it loads its settings.
	if rc, err := config.LoadRuntime(); err == nil {
		imageops.SetLimits(imageops.Limits{MaxPixels: rc.MaxImagePixels, MaxBytes: rc.MaxImageBytes})
	}
	// Ctrl-C and SIGTERM cancel the context: commands stop cleanly and never
	// leave a half-written file behind.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				return 2
			case errors.As(err, new(configError)):
				// Said once; the unit does not restart on this status.
				fmt.Fprintf(stderr, "%sinspectd %s: %v (exit %d: fix the setting; restarting would not help)\n", errPrefix(stderr), c.name, redact.Error(err), ExitConfig)
				return ExitConfig
			case errors.Is(err, context.Canceled):
				fmt.Fprintf(stderr, "inspectd %s: interrupted; nothing was written\n", c.name)
				return 130
			default:
				fmt.Fprintf(stderr, "%sinspectd %s: %v\n", errPrefix(stderr), c.name, redact.Error(err))
				return 1
			}
		}
	}
	fmt.Fprintf(stderr, "inspectd: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

var errUsage = errors.New("usage")

// errPrefix marks the last words of a failed command as an error for
// journald ("<3>") when stderr is the journal's stream.
func errPrefix(stderr io.Writer) string {
	if logging.Resolve(logging.Auto, os.Getenv("JOURNAL_STREAM"), stderr) == logging.Journal {
		return fmt.Sprintf("<%d>", logging.Priority(slog.LevelError))
	}
	return ""
}

// ExitConfig is the exit status for a problem that restarting cannot fix: a
// bad setting or a spool directory that cannot be written (sysexits'
// EX_CONFIG). The systemd unit lists it in RestartPreventExitStatus, so a
// line with a broken setting stops once with the reason in the journal
// instead of restarting in a loop.
const ExitConfig = 78

// configError marks an error as a setting or environment problem (ExitConfig).
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

// newFlagSet makes a subcommand's flag set whose help is the usage text
// followed by the flags.
func newFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags; a flag error has already been printed by the FlagSet.
func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v += "+" + s.Value[:min(12, len(s.Value))]
			}
		}
	}
	fmt.Fprintf(stdout, "inspectd %s\n", v)
	return nil
}

// openModel loads a model and everything needed to inspect with it.
func openModel(path string) (*pipeline.Inspector, func(), error) {
	rc, err := config.LoadRuntime()
	if err != nil {
		return nil, nil, err
	}
	l, err := pipeline.Open(options.Pipeline(rc), path)
	if err != nil {
		return nil, nil, err
	}
	return l.Inspector, func() { l.Close() }, nil
}

// openExtractor opens the backbone for calibration.
func openExtractor(feat features.Config, backbone string) (*features.Extractor, string, func(), error) {
	rc, err := config.LoadRuntime()
	if err != nil {
		return nil, "", nil, err
	}
	rc.Backbone = rc.BackboneFor(backbone, feat.Taps)
	rt, err := engine.Open(options.Engine(rc, feat.Taps))
	if err != nil {
		return nil, "", nil, err
	}
	ex, err := features.New(rt, feat, rc.MaxBatch)
	if err != nil {
		rt.Close()
		return nil, "", nil, err
	}
	return ex, rc.Backbone, func() { rt.Close() }, nil
}

// intList parses "448,224,112".
func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%q is not a list of integers", s)
		}
		out = append(out, v)
	}
	return out, nil
}

func stringList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
