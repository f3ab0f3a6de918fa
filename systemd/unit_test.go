// Package systemd holds the service unit; its test checks the unit with
// systemd's own tools.
package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestUnitSecurityExposure(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	unit, err := os.ReadFile("inspectd@.service")
	if err != nil {
		t.Fatal(err)
	}
	// Analyse an instance, as systemd would run it.
	inst := filepath.Join(t.TempDir(), "inspectd@cam0.service")
	os.WriteFile(inst, unit, 0o644)
	out, _ := exec.Command(tool, "security", "--offline=true", inst).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	level, _ := strconv.ParseFloat(string(m[1]), 64)
	if level > 2.0 {
		t.Errorf("exposure %.1f > 2.0", level)
	}
	t.Logf("systemd-analyze security: exposure %.1f", level)
}

func TestUnitEssentials(t *testing.T) {
	unit, err := os.ReadFile("inspectd@.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Type=notify", "WatchdogSec=", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=always",
		"EnvironmentFile=/etc/inspectd/%i.env", "DynamicUser=yes", "StateDirectory=inspectd/%i",
		"NoNewPrivileges=yes", "CapabilityBoundingSet=\n", "ProtectSystem=strict", "SystemCallFilter=@system-service",
		"DevicePolicy=closed", "DeviceAllow=char-video4linux rw",
		"RestartPreventExitStatus=78\n", "ReadWritePaths=-/srv/inspectd/%i\n", "UMask=0027\n",
	} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q", want)
		}
	}
}

// The env files of two cameras on one host must not collide: each its own
// metrics port and camera source, and none sets what the unit derives from
// the instance name (camera id, hence client id and topics; model; spool).
func TestCameraEnvFilesDoNotCollide(t *testing.T) {
	read := func(name string) map[string]string {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		env := map[string]string{}
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
				env[k] = v
			}
		}
		return env
	}
	cams := []map[string]string{read("cam0.env.example"), read("cam1.env.example")}
	for _, k := range []string{"INSPECTD_HTTP_ADDR", "INSPECTD_SOURCE"} {
		if cams[0][k] == "" || cams[0][k] == cams[1][k] {
			t.Errorf("%s: cam0 %q, cam1 %q; want set and different", k, cams[0][k], cams[1][k])
		}
	}
	for i, env := range cams {
		for _, k := range []string{"INSPECTD_CAMERA", "INSPECTD_MQTT_CLIENT_ID", "INSPECTD_MODEL", "INSPECTD_SPOOL_DIR", "INSPECTD_STATE_DIR"} {
			if v, ok := env[k]; ok {
				t.Errorf("cam%d.env.example sets %s=%s: the unit derives it from the instance, and a copied file would share it", i, k, v)
			}
		}
	}
}

// The Argus drop-in (Jetson CSI cameras) binds nvargus-daemon's socket into
// the private /tmp that PrivateTmp=yes gives the unit, and with it the unit
// keeps its exposure level.
func TestArgusDropIn(t *testing.T) {
	unit, err := os.ReadFile("inspectd@.service")
	if err != nil {
		t.Fatal(err)
	}
	dropIn, err := os.ReadFile("argus.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file []byte
		want string
	}{
		{unit, "\nPrivateTmp=yes\n"},
		{unit, "AF_UNIX"},
		{dropIn, "\nBindPaths=/tmp/argus_socket\n"},
		{dropIn, "\nAfter=nvargus-daemon.service\n"},
		{dropIn, "\nPartOf=nvargus-daemon.service\n"},
	} {
		if !strings.Contains(string(c.file), c.want) {
			t.Errorf("lacks %q", strings.TrimSpace(c.want))
		}
	}
	example, _ := os.ReadFile("cam0.env.example")
	if !strings.Contains(string(example), "argus.conf") {
		t.Error("cam0.env.example's CSI pipeline does not point at the argus.conf drop-in")
	}
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	// Sections may repeat: the unit followed by the drop-in is what systemd
	// merges.
	inst := filepath.Join(t.TempDir(), "inspectd@cam0.service")
	os.WriteFile(inst, append(append(unit, '\n'), dropIn...), 0o644)
	out, _ := exec.Command(tool, "security", "--offline=true", inst).CombinedOutput()
	if strings.Contains(string(out), "Unknown key") || strings.Contains(string(out), "Failed to parse") {
		t.Errorf("systemd-analyze does not take the drop-in:\n%s", out)
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.0 {
		t.Errorf("exposure with the drop-in %.1f > 2.0", level)
	}
}
