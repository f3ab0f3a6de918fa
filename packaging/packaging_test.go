// Package packaging holds the scripts that cross-build inspectd for arm64
// and package it as a .deb; its test builds the package and installs it into
// a scratch root with dpkg, as an administrator would on a real system.
package packaging

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/internal/testenv"
)

// TestDebInstall builds the package for each architecture, installs it with
// `dpkg --root` into an empty root (maintainer scripts run chrootless with
// DPKG_ROOT), checks its files, control data and unit, runs the installed
// binary, then purges it. arm64 runs only where `make arm64` made the
// sysroot, and its binary runs under qemu-user.
func TestDebInstall(t *testing.T) {
	if os.Getenv("INSPECTD_PACKAGE_TESTS") != "1" {
		t.Skip("package tests build the binary and a .deb (minutes): set INSPECTD_PACKAGE_TESTS=1 to run them")
	}
	for _, tool := range []string{"dpkg", "dpkg-deb", "dpkg-shlibdeps", "readelf"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (apt-get install dpkg-dev binutils): %v", tool, err)
		}
	}
	repo := testenv.RepoRoot()
	sysroot := filepath.Join(repo, ".deps", "sysroot-arm64")

	for _, tc := range []struct {
		arch    string
		machine elf.Machine
		ortArch string
		ready   func() string // why the architecture cannot be tested here, or ""
		run     func(root string, args ...string) *exec.Cmd
	}{
		{
			arch: "amd64", machine: elf.EM_X86_64, ortArch: "x64",
			ready: func() string { return "" },
			run: func(root string, args ...string) *exec.Cmd {
				return exec.Command(filepath.Join(root, "usr/bin/inspectd"), args...)
			},
		},
		{
			arch: "arm64", machine: elf.EM_AARCH64, ortArch: "arm64",
			ready: func() string {
				if _, err := os.Stat(filepath.Join(sysroot, ".inspectd-sysroot")); err != nil {
					return "no arm64 sysroot: run make arm64 first"
				}
				if _, err := exec.LookPath("qemu-aarch64-static"); err != nil {
					return "qemu-aarch64-static not installed"
				}
				return ""
			},
			run: func(root string, args ...string) *exec.Cmd {
				cmd := exec.Command("qemu-aarch64-static", append([]string{filepath.Join(root, "usr/bin/inspectd")}, args...)...)
				cmd.Env = append(os.Environ(), "QEMU_LD_PREFIX="+sysroot)
				return cmd
			},
		},
	} {
		t.Run(tc.arch, func(t *testing.T) {
			if why := tc.ready(); why != "" {
				t.Skip(why)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
			defer cancel()
			out := t.TempDir()
			start := time.Now()
			build := exec.CommandContext(ctx, "bash", filepath.Join(repo, "packaging/deb.sh"), tc.arch)
			build.Dir = repo
			build.Env = append(os.Environ(), "DEB_OUT="+out)
			if b, err := build.CombinedOutput(); err != nil {
				t.Fatalf("building the %s package: %v\n%s", tc.arch, err, b)
			}
			t.Logf("%s package built in %s", tc.arch, time.Since(start).Round(time.Second))
			deb, err := filepath.EvalSymlinks(filepath.Join(out, "inspectd_"+tc.arch+".deb"))
			if err != nil {
				t.Fatalf("package not written: %v", err)
			}

			field := func(name string) string {
				b, err := exec.Command("dpkg-deb", "--field", deb, name).Output()
				if err != nil {
					t.Fatalf("reading control field %s: %v", name, err)
				}
				return strings.TrimSpace(string(b))
			}
			version := field("Version")
			if got := field("Architecture"); got != tc.arch {
				t.Errorf("Architecture = %q, want %q", got, tc.arch)
			}
			checkDepends(t, field("Depends"), filepath.Join(repo, "bin", tc.arch, "inspectd"))

			root := t.TempDir()
			for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			dpkg := func(args ...string) string {
				t.Helper()
				all := append([]string{"--root=" + root, "--force-script-chrootless", "--force-depends",
					"--force-architecture", "--log=/dev/null"}, args...)
				b, err := exec.CommandContext(ctx, "dpkg", all...).CombinedOutput()
				if err != nil {
					t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, b)
				}
				return string(b)
			}
			dpkg("--install", deb)
			if st := dpkg("--status", "inspectd"); !strings.Contains(st, "Status: install ok installed") {
				t.Errorf("after install, dpkg --status:\n%s", st)
			} else {
				for _, c := range []string{"cam0", "cam1"} {
					if !strings.Contains(st, "/etc/inspectd/"+c+".env.example ") {
						t.Errorf("%s.env.example is not a registered conffile:\n%s", c, st)
					}
				}
			}

			for _, f := range []struct {
				path, same string // same: the repository file it must equal
				mode       os.FileMode
			}{
				{"usr/bin/inspectd", "", 0o755},
				{"lib/systemd/system/inspectd@.service", "systemd/inspectd@.service", 0o644},
				{"etc/inspectd/cam0.env.example", "systemd/cam0.env.example", 0o644},
				{"etc/inspectd/cam1.env.example", "systemd/cam1.env.example", 0o644},
				{"usr/share/inspectd/argus.conf", "systemd/argus.conf", 0o644},
				{"usr/share/doc/inspectd/README.md", "README.md", 0o644},
				{"usr/lib/inspectd/libonnxruntime.so.1", ".deps/onnxruntime/" + tc.ortArch + "/libonnxruntime.so.1", 0o644},
			} {
				p := filepath.Join(root, f.path)
				fi, err := os.Stat(p)
				if err != nil {
					t.Errorf("installed file: %v", err)
					continue
				}
				if fi.Mode().Perm() != f.mode {
					t.Errorf("/%s mode %v, want %v", f.path, fi.Mode().Perm(), f.mode)
				}
				if f.same != "" && !sameFile(t, p, filepath.Join(repo, f.same)) {
					t.Errorf("/%s differs from %s", f.path, f.same)
				}
			}
			for _, p := range []string{"usr/bin/inspectd", "usr/lib/inspectd/libonnxruntime.so.1"} {
				if m := elfMachine(t, filepath.Join(root, p)); m != tc.machine {
					t.Errorf("/%s is for %v, want %v", p, m, tc.machine)
				}
			}
			if fi, err := os.Stat(filepath.Join(root, "var/lib/inspectd")); err != nil || !fi.IsDir() {
				t.Errorf("state directory /var/lib/inspectd: %v", err)
			}

			// The unit must run the installed binary, read the installed
			// env files and need no user from the package.
			unit, _ := os.ReadFile(filepath.Join(root, "lib/systemd/system/inspectd@.service"))
			execStart := regexp.MustCompile(`(?m)^ExecStart=(\S+)`).FindSubmatch(unit)
			if execStart == nil {
				t.Errorf("unit has no ExecStart")
			} else if _, err := os.Stat(filepath.Join(root, string(execStart[1]))); err != nil {
				t.Errorf("unit's ExecStart %s is not in the package: %v", execStart[1], err)
			}
			env := regexp.MustCompile(`(?m)^EnvironmentFile=(\S+)/%i\.env$`).FindSubmatch(unit)
			if env == nil || string(env[1]) != "/etc/inspectd" {
				t.Errorf("unit's EnvironmentFile does not read /etc/inspectd/<camera>.env beside the example")
			}
			if !bytes.Contains(unit, []byte("\nDynamicUser=yes\n")) {
				t.Errorf("unit lacks DynamicUser=yes, and the package creates no user")
			}
			// The example must point at the library the package installs.
			example, _ := os.ReadFile(filepath.Join(root, "etc/inspectd/cam0.env.example"))
			if m := regexp.MustCompile(`(?m)^INSPECTD_ORT_LIB=(\S+)`).FindSubmatch(example); m == nil {
				t.Errorf("cam0.env.example sets no INSPECTD_ORT_LIB")
			} else if _, err := os.Stat(filepath.Join(root, string(m[1]))); err != nil {
				t.Errorf("cam0.env.example's INSPECTD_ORT_LIB is not in the package: %v", err)
			}

			// The backbones come in inspectd-models (architecture all), so
			// the example's INSPECTD_BACKBONE exists after an install.
			models := filepath.Join(out, "inspectd-models_all.deb")
			if _, err := os.Stat(models); err != nil {
				why := "inspectd-models not built (no backbone in .deps/models or beside INSPECTD_BACKBONE)"
				if os.Getenv("INSPECTD_REQUIRE_ASSETS") == "1" {
					t.Errorf("INSPECTD_REQUIRE_ASSETS=1 but %s", why)
				} else {
					t.Log(why + ": not checked")
				}
			} else {
				dpkg("--install", models)
				m := regexp.MustCompile(`(?m)^INSPECTD_BACKBONE=(\S+)`).FindSubmatch(example)
				if m == nil {
					t.Errorf("cam0.env.example sets no INSPECTD_BACKBONE")
				} else if fi, err := os.Stat(filepath.Join(root, string(m[1]))); err != nil || fi.Size() < 1<<20 {
					t.Errorf("cam0.env.example's INSPECTD_BACKBONE %s is not installed by inspectd-models: %v", m[1], err)
				}
			}
			if !strings.Contains(field("Recommends"), "inspectd-models (= "+version+")") {
				t.Errorf("Recommends %q lacks inspectd-models of the same version", field("Recommends"))
			}

			b, err := tc.run(root, "version").CombinedOutput()
			if err != nil {
				t.Fatalf("installed inspectd version: %v\n%s", err, b)
			}
			if got, want := strings.TrimSpace(string(b)), "inspectd "+version; got != want {
				t.Errorf("installed inspectd version printed %q, want %q", got, want)
			}

			// Purge removes the files, the state directory and dpkg's record.
			if err := os.WriteFile(filepath.Join(root, "var/lib/inspectd/model.zip"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			dpkg("--purge", "inspectd", "inspectd-models")
			for _, p := range []string{"usr/bin/inspectd", "etc/inspectd/cam0.env.example", "var/lib/inspectd", "usr/share/inspectd/mobilenet_v2_taps.onnx"} {
				if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
					t.Errorf("/%s still there after purge (%v)", p, err)
				}
			}
		})
	}
}

// checkDepends checks that every OpenCV library the binary links is
// depended on by its Debian package name (libopencv_dnn.so.406 ->
// libopencv-dnn406), and that OpenBLAS and libc are too.
func checkDepends(t *testing.T, depends, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("reading the binary's libraries: %v", err)
	}
	defer f.Close()
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatalf("reading the binary's libraries: %v", err)
	}
	names := map[string]bool{}
	for _, d := range strings.Split(depends, ",") {
		names[strings.Fields(d)[0]] = true
	}
	re := regexp.MustCompile(`^libopencv_(\w+)\.so\.(\d+)$`)
	opencv := 0
	for _, l := range libs {
		if m := re.FindStringSubmatch(l); m != nil {
			opencv++
			if pkg := "libopencv-" + strings.ReplaceAll(m[1], "_", "-") + m[2]; !names[pkg] {
				t.Errorf("binary links %s but Depends lacks %s: %s", l, pkg, depends)
			}
		}
	}
	if opencv == 0 {
		t.Errorf("binary links no OpenCV library: %v", libs)
	}
	for _, pkg := range []string{"libc6", "libopenblas0"} {
		if !names[pkg] {
			t.Errorf("Depends lacks %s: %s", pkg, depends)
		}
	}
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

func elfMachine(t *testing.T, path string) elf.Machine {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	return f.Machine
}
