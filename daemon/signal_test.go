package daemon_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIGHUP while the daemon starts (loading the model, connecting) must not
// kill it. On main the handler was installed only in Run: a SIGHUP 0.3 s
// after start killed the process (exit 129), and the same race killed
// `go test ./daemon/` now and then.
func TestSIGHUPDuringStartup(t *testing.T) {
	f := newFixture(t, 9)
	hot := filepath.Join(f.dir, "hot")
	os.MkdirAll(hot, 0o755)
	f.config(t, "dir:"+hot)
	sub := subscribe(t, f.broker.URL(), "cam0")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "INSPECTD_TEST_RUN_DAEMON=1")
	var stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	}()
	// Before Main runs, the Go runtime gives SIGHUP its default action
	// (exit); from the first log line on, a SIGHUP must be safe.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "inspectd starting"); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no start-up line:\n%s", stderr.String())
		}
	}
	for i := 0; i < 5; i++ { // during start-up: model load, broker connect
		cmd.Process.Signal(syscall.SIGHUP)
		time.Sleep(20 * time.Millisecond)
	}
	for deadline := time.Now().Add(30 * time.Second); sub.lastAvail() != "online"; time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("daemon exited during start-up after SIGHUP: %v\n%s", waitErr, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon never online:\n%s", stderr.String())
		}
	}
	cmd.Process.Signal(syscall.SIGHUP) // running: reloads
	dropParts(t, hot, 0, 1)
	sub.waitEvents(t, 1, 30*time.Second)
	select {
	case <-exited:
		t.Fatalf("daemon exited: %v\n%s", waitErr, stderr.String())
	default:
	}
}
