package daemon_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer collects a child's stderr while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// A camera URL and a broker URL with passwords: the start-up line, the
// "broker unreachable" warning and the camera's failures name them without
// the user info. On main both passwords were printed.
func TestLogsRedactURLPasswords(t *testing.T) {
	f := newFixture(t, 8)
	f.config(t, "dir:"+filepath.Join(f.dir, "hot")) // the model and spool settings
	cases := []struct {
		name, env, value string
		want             []string // log lines that must appear (redacted)
	}{
		{"broker", "INSPECTD_MQTT_BROKER", fmt.Sprintf("tcp://user:s3cret@127.0.0.1:%d", closedPort(t)),
			[]string{"inspectd running", "broker unreachable", "tcp://***@127.0.0.1"}},
		{"camera", "INSPECTD_SOURCE", fmt.Sprintf("rtsp://user:s3cret@127.0.0.1:%d/stream", closedPort(t)),
			[]string{"inspectd running", "rtsp://***@127.0.0.1", "capture failed"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(c.env, c.value)
			t.Setenv("INSPECTD_MQTT_USERNAME", "user")
			t.Setenv("INSPECTD_MQTT_PASSWORD", "s3cret")
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "INSPECTD_TEST_RUN_DAEMON=1")
			var stderr lockedBuffer
			cmd.Stdout, cmd.Stderr = &stderr, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Signal(syscall.SIGTERM)
				cmd.Wait()
			}()
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				out := stderr.String()
				all := true
				for _, w := range c.want {
					all = all && strings.Contains(out, w)
				}
				if all {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("log lacks one of %q:\n%s", c.want, out)
				}
			}
			if out := stderr.String(); strings.Contains(out, "s3cret") {
				t.Fatalf("password in the log:\n%s", out)
			}
		})
	}
}
