package evaluation

import (
	"testing"

	"github.com/inspectd/inspectd/transform"
)

// unionAngles decides how many backbone runs an eval sweep costs: every
// rotation once, and each T scoring exactly its own rotations.
func TestUnionAngles(t *testing.T) {
	small := transform.Config{Mode: transform.Small, MaxAngle: 10}
	cases := []struct {
		name     string
		tr       transform.Config
		Ts       []int
		wantRuns int
	}{
		{"rotations nest", transform.Config{Mode: transform.Rotate}, []int{8, 1, 4, 16, 64}, 64},
		{"small angles share the ends", small, []int{8, 1, 4}, 8 + 1 + 2},
		{"repeated T counted once", small, []int{8, 8, 8}, 8},
		{"no transformations", transform.Config{Mode: transform.None}, []int{8, 64}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			all, index := unionAngles(c.tr, c.Ts)
			if len(all) != c.wantRuns {
				t.Errorf("%d rotations %v, want %d", len(all), all, c.wantRuns)
			}
			for _, T := range c.Ts {
				want := c.tr.TestAngles(T)
				got := index[T]
				if len(got) != len(want) {
					t.Fatalf("T=%d: %d indexes, want %d", T, len(got), len(want))
				}
				for i, k := range got {
					if all[k] != want[i] {
						t.Errorf("T=%d: rotation %d is %g, want %g", T, i, all[k], want[i])
					}
				}
			}
		})
	}
}
