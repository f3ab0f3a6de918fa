package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FakeGigE is Aravis's GigE Vision camera simulator (arv-fake-gv-camera-0.8)
// answering on 127.0.0.1 only: GVCP discovery and GenICam features on UDP
// 3956, its GVSP image stream to the reader's loopback port.
type FakeGigE struct {
	t      testing.TB
	Serial string
	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	logs   bytes.Buffer
}

// StartFakeGigE starts the simulator, skipping the test when Aravis's tools
// or its GStreamer element are missing; it stops at cleanup. GVCP's port is
// fixed (3956): a lock file keeps simulators of test binaries running at the
// same time (go test ./...) from sharing it.
func StartFakeGigE(t testing.TB, serial string) *FakeGigE {
	t.Helper()
	if _, err := exec.LookPath("arv-fake-gv-camera-0.8"); err != nil {
		skip(t, "arv-fake-gv-camera-0.8 not installed (scripts/setup.sh installs aravis-tools)")
	}
	RequireGStreamer(t, "aravissrc", "videoconvert", "appsink")
	lockGVCP(t)
	f := &FakeGigE{t: t, Serial: serial}
	t.Cleanup(func() {
		f.Stop()
		if t.Failed() {
			t.Logf("arv-fake-gv-camera log:\n%s", f.logs.String())
		}
	})
	f.Start()
	return f
}

// Address is the camera as the gige: URI should name it in tests: by its IP
// address Aravis asks that address alone, while a name (Aravis-Fake-SERIAL)
// makes it broadcast a discovery on every interface, beyond loopback.
func (f *FakeGigE) Address() string { return "127.0.0.1" }

// Start (re)starts the simulator. It listens at once; no wait is needed
// beyond the process starting, and discovery by the reader retries.
func (f *FakeGigE) Start() {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	cmd := exec.Command("arv-fake-gv-camera-0.8", "-i", "127.0.0.1", "-s", f.Serial)
	cmd.Stdout, cmd.Stderr = &f.logs, &f.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.t.Fatalf("starting arv-fake-gv-camera-0.8: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	f.cmd, f.done = cmd, done
	select {
	case <-done:
		f.t.Fatalf("arv-fake-gv-camera-0.8 exited at start:\n%s", f.logs.String())
	case <-time.After(300 * time.Millisecond):
	}
}

// Stop kills the simulator, as a camera losing power.
func (f *FakeGigE) Stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done == nil {
		return
	}
	f.cmd.Process.Kill()
	<-f.done
	f.done = nil
}

// capNetRaw is CAP_NET_RAW's bit in /proc/self/status's CapEff.
const capNetRaw = 13

func hasNetRaw() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<capNetRaw) != 0
		}
	}
	return false
}

const noNetRawEnv = "INSPECTD_TEST_NO_NET_RAW"

// RunWithoutNetRaw makes the calling test run in a process without
// CAP_NET_RAW. With it (root), Aravis receives a GigE Vision stream through
// a packet socket bound to the camera's interface, which sees nothing the
// simulator sends over loopback; without it Aravis falls back to an
// ordinary UDP socket, as it does for any unprivileged reader. When the
// current process has the capability, the test binary is run again for
// this test alone under setpriv with the capability dropped, its output is
// logged, and RunWithoutNetRaw reports true: the caller returns at once.
func RunWithoutNetRaw(t *testing.T) (ranElsewhere bool) {
	t.Helper()
	if !hasNetRaw() {
		return false
	}
	if os.Getenv(noNetRawEnv) == "1" {
		t.Fatal("CAP_NET_RAW still held after setpriv dropped it")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		skip(t, "running as root and setpriv (util-linux) not found to drop CAP_NET_RAW for the Aravis reader")
	}
	cmd := exec.Command(setpriv, "--bounding-set=-net_raw", "--inh-caps=-net_raw", os.Args[0],
		"-test.run", "^"+strings.ReplaceAll(t.Name(), "/", "$/^")+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), noNetRawEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("without CAP_NET_RAW (setpriv):\n%s", out)
	if err != nil {
		t.Fatalf("the test without CAP_NET_RAW: %v", err)
	}
	if !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("the test without CAP_NET_RAW did not pass: %s", fmt.Sprint(len(out)))
	}
	return true
}

// lockGVCP waits (at most two minutes) for an exclusive lock on a file
// standing for UDP port 3956 on 127.0.0.1, held until the test ends.
func lockGVCP(t testing.TB) {
	t.Helper()
	fd, err := syscall.Open(os.TempDir()+"/inspectd-test-gvcp.lock", syscall.O_CREAT|syscall.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatalf("GigE simulator lock: %v", err)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			break
		} else if err != syscall.EWOULDBLOCK || time.Now().After(deadline) {
			syscall.Close(fd)
			t.Fatalf("GigE simulator lock: %v", err)
		}
	}
	t.Cleanup(func() { syscall.Close(fd) })
}

// Control sets GenICam features (Name=Value) on the simulator through
// arv-tool-0.8, as a person reconfiguring the camera while a reader holds
// it; the test skips when the tool is missing.
func (f *FakeGigE) Control(features ...string) {
	f.t.Helper()
	tool, err := exec.LookPath("arv-tool-0.8")
	if err != nil {
		skip(f.t, "arv-tool-0.8 not installed (scripts/setup.sh installs aravis-tools-cli)")
	}
	args := append([]string{"-a", f.Address(), "control"}, features...)
	out, err := exec.Command(tool, args...).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("not found")) || bytes.Contains(out, []byte("rror")) {
		f.t.Fatalf("arv-tool-0.8 %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// RequireAravis skips the test when libaravis-0.8.so.0 cannot be loaded
// (the software-trigger source dlopens it).
func RequireAravis(t testing.TB) {
	t.Helper()
	for _, dir := range []string{"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib", "/usr/local/lib"} {
		if _, err := os.Stat(dir + "/libaravis-0.8.so.0"); err == nil {
			return
		}
	}
	skip(t, "libaravis-0.8.so.0 not installed (scripts/setup.sh installs libaravis-0.8-0)")
}
