package registry

import (
	"strings"
	"testing"
)

// A model file names its method only, so one name cannot be two densities,
// whatever their kinds.
func TestOneNameSpace(t *testing.T) {
	patch, pooled := New[int]("patch"), New[string]("pooled")
	patch.Register("registry-test-a", 1)
	pooled.Register("registry-test-b", "b")
	if !patch.Has("registry-test-a") || patch.Has("registry-test-b") {
		t.Errorf("has a: %v, has b: %v", patch.Has("registry-test-a"), patch.Has("registry-test-b"))
	}
	if f, err := pooled.Get("registry-test-b"); err != nil || f != "b" {
		t.Errorf("get b: %q, %v", f, err)
	}
	if _, err := pooled.Get("registry-test-a"); err == nil || !strings.Contains(err.Error(), `unknown pooled density "registry-test-a" (have [registry-test-b])`) {
		t.Errorf("a as a pooled density: %v", err)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "registered twice (patch, then pooled)") {
			t.Errorf("a name registered as both kinds: %v", r)
		}
	}()
	pooled.Register("registry-test-a", "a")
}
