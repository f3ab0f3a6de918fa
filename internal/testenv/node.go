package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// NodeModules is where scripts/setup.sh installs the npm packages that
// tests use as independent implementations (sparkplug-payload: Eclipse
// Tahu's Sparkplug B codec): $INSPECTD_NODE_MODULES, else
// .deps/node/node_modules.
func NodeModules() string {
	if p := os.Getenv("INSPECTD_NODE_MODULES"); p != "" {
		return p
	}
	return filepath.Join(RepoRoot(), ".deps", "node", "node_modules")
}

// RequireNodePackage returns the node binary and the node_modules folder
// holding pkg, skipping the test (failing it under INSPECTD_REQUIRE_ASSETS=1)
// when node or the package is absent.
func RequireNodePackage(t testing.TB, pkg string) (node, modules string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		skip(t, "node not installed: skipping the test against the npm package %s (install Node.js and run scripts/setup.sh)", pkg)
	}
	modules = NodeModules()
	if _, err := os.Stat(filepath.Join(modules, pkg, "package.json")); err != nil {
		skip(t, "npm package %s not found in %s: run scripts/setup.sh (or set INSPECTD_NODE_MODULES)", pkg, modules)
	}
	return node, modules
}
