package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bad setting or a spool that cannot be written ends `inspectd run` with
// ExitConfig, which the unit does not restart on, and says why once. On main
// both exited 1 and systemd restarted the daemon in a loop.
func TestRunExitsWithConfigStatus(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, []byte("x"), 0o644)
	readOnly := filepath.Join(dir, "ro")
	os.Mkdir(readOnly, 0o500)
	// Another camera's instance holding the metrics port: on main the
	// daemon exited 1 after loading everything and systemd restarted it
	// forever.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cases := []struct {
		name string
		env  map[string]string
		want string
		skip bool
	}{
		{"no source", map[string]string{"INSPECTD_SOURCE": ""}, "INSPECTD_SOURCE", false},
		{"bad rate", map[string]string{"INSPECTD_MAX_RATE": "-3"}, "INSPECTD_MAX_RATE", false},
		{"not a number", map[string]string{"INSPECTD_MAX_RATE": "fast"}, "MAX_RATE", false},
		{"metrics port taken", map[string]string{"INSPECTD_HTTP_ADDR": taken.Addr().String()}, "INSPECTD_HTTP_ADDR=" + taken.Addr().String() + " is in use", false},
		{"bad log format", map[string]string{"INSPECTD_LOG_FORMAT": "xml"}, "INSPECTD_LOG_FORMAT", false},
		{"spool under a file", map[string]string{"INSPECTD_SPOOL_DIR": filepath.Join(blocker, "spool")}, "INSPECTD_SPOOL_DIR", false},
		// Permission bits do not stop root; a read-only mount would.
		{"spool read-only", map[string]string{"INSPECTD_SPOOL_DIR": readOnly}, "not writable", os.Geteuid() == 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.skip {
				t.Skip("running as root: permission bits do not make a directory read-only")
			}
			t.Setenv("INSPECTD_SOURCE", "dir:"+filepath.Join(dir, "hot"))
			t.Setenv("INSPECTD_MODEL", filepath.Join(dir, "model.zip"))
			t.Setenv("INSPECTD_SPOOL_DIR", filepath.Join(dir, "spool"))
			t.Setenv("INSPECTD_MAX_RATE", "5")
			t.Setenv("INSPECTD_HTTP_ADDR", "127.0.0.1:0")
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			code, _, stderr := run(t, "run")
			if code != ExitConfig {
				t.Errorf("exit %d; want %d (stderr %q)", code, ExitConfig, stderr)
			}
			// The reason once, on the last line (a setting found after
			// start-up follows the "starting" log line).
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if !strings.Contains(lines[len(lines)-1], c.want) || strings.Count(stderr, c.want) != 1 || len(lines) > 2 {
				t.Errorf("stderr %q; want the reason naming %q once, last", stderr, c.want)
			}
		})
	}
}

// A model that cannot be loaded is not a setting: it may be replaced (and the
// daemon restarted) without touching the configuration, so it keeps exit 1.
func TestRunMissingModelIsNotConfigStatus(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("INSPECTD_SOURCE", "dir:"+filepath.Join(dir, "hot"))
	t.Setenv("INSPECTD_MODEL", filepath.Join(dir, "model.zip"))
	t.Setenv("INSPECTD_SPOOL_DIR", filepath.Join(dir, "spool"))
	t.Setenv("INSPECTD_HTTP_ADDR", "127.0.0.1:0")
	code, _, stderr := run(t, "run")
	if code != 1 || !strings.Contains(stderr, "does not exist") {
		t.Errorf("exit %d, stderr %q; want 1 and the missing model named", code, stderr)
	}
}

// The unit must not restart on the configuration exit status.
func TestUnitPreventsRestartOnConfigStatus(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join("..", "..", "systemd", "inspectd@.service"))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("\nRestartPreventExitStatus=%d\n", ExitConfig); !strings.Contains(string(unit), want) {
		t.Errorf("unit lacks %q", strings.TrimSpace(want))
	}
}

// INSPECTD_LOG_FORMAT reaches the daemon's log: JSON lines, or journald's
// priority prefixes (the last words of a failure too).
func TestRunLogFormat(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		format string
		check  func(line string) bool
	}{
		{"json", func(l string) bool {
			var rec map[string]any
			return json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == "inspectd starting" && rec["camera"] == "cam0"
		}},
		{"journal", func(l string) bool {
			return strings.HasPrefix(l, "<6>level=INFO msg=\"inspectd starting\" camera=cam0")
		}},
	}
	for _, c := range cases {
		t.Run(c.format, func(t *testing.T) {
			t.Setenv("INSPECTD_SOURCE", "dir:"+filepath.Join(dir, "hot"))
			t.Setenv("INSPECTD_MODEL", filepath.Join(dir, "model.zip"))
			t.Setenv("INSPECTD_SPOOL_DIR", filepath.Join(dir, "spool"))
			t.Setenv("INSPECTD_HTTP_ADDR", "")
			t.Setenv("INSPECTD_LOG_FORMAT", c.format)
			_, _, stderr := run(t, "run")
			if first, _, _ := strings.Cut(stderr, "\n"); !c.check(first) {
				t.Errorf("first line %q", first)
			}
		})
	}
}
