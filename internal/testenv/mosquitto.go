package testenv

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Mosquitto is a real broker on a free loopback port, for tests that check
// what subscribers in the field would receive. Stop and Start keep the port,
// so clients can reconnect to the "same" broker after an outage.
type Mosquitto struct {
	t    testing.TB
	Port int
	conf string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	logs bytes.Buffer
}

// StartMosquitto starts mosquitto (skipping the test when it is not
// installed) with anonymous access and no persistence; it stops at cleanup.
func StartMosquitto(t testing.TB) *Mosquitto {
	t.Helper()
	return StartMosquittoWith(t, MosquittoOptions{})
}

// MosquittoOptions change the test broker's configuration.
type MosquittoOptions struct {
	// Persistence keeps sessions, their queued messages and retained
	// messages across Stop and Start (mosquitto saves them on SIGTERM), as
	// a plant's central broker would.
	Persistence bool
	// Extra is appended to the configuration: a bridge, for example.
	Extra string
}

// StartMosquittoWith starts mosquitto as StartMosquitto does, with options.
func StartMosquittoWith(t testing.TB, o MosquittoOptions) *Mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
		if _, err := os.Stat(bin); err != nil {
			skip(t, "mosquitto not installed (scripts/setup.sh installs it)")
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	m := &Mosquitto{t: t, Port: port, conf: filepath.Join(t.TempDir(), "mosquitto.conf")}
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nlog_dest stderr\n", port)
	if o.Persistence {
		conf += fmt.Sprintf("persistence true\npersistence_location %s/\n", t.TempDir())
	} else {
		conf += "persistence false\n"
	}
	if os.Geteuid() == 0 {
		conf += "user root\n"
	}
	conf += o.Extra
	if err := os.WriteFile(m.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	m.cmdPath(bin)
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", m.logs.String())
		}
	})
	m.Start()
	return m
}

func (m *Mosquitto) cmdPath(bin string) { m.cmd = &exec.Cmd{Path: bin} }

// URL is the broker's tcp:// address.
func (m *Mosquitto) URL() string { return fmt.Sprintf("tcp://127.0.0.1:%d", m.Port) }

// Start (re)starts the broker and waits until it listens.
func (m *Mosquitto) Start() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	cmd := exec.Command(m.cmd.Path, "-c", m.conf)
	cmd.Stdout, cmd.Stderr = &m.logs, &m.logs
	// The broker dies with the test binary, even when that is killed
	// (no orphaned mosquitto holding a port).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("starting mosquitto: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	m.cmd, m.done = cmd, done
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", m.Port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			m.t.Fatalf("mosquitto exited at start:\n%s", m.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mosquitto did not listen on %d within 5s", m.Port)
		}
	}
}

// Stop stops the broker (SIGTERM, then SIGKILL after 5 s).
func (m *Mosquitto) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(5 * time.Second):
		m.cmd.Process.Kill()
		<-m.done
	}
	m.done = nil
}
