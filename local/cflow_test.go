package local

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/inspectd/inspectd/model"
)

// smallCFlow trains in well under a second on the synthetic grids below.
var smallCFlow = CFlowConfig{Proj: 8, Freqs: 3, Blocks: 4, Hidden: 32, Depth: 1, Clamp: 1.9,
	Steps: 600, Batch: 128, LR: 2e-3, Folds: 4, Seed: 1}

const synH, synW, synDim = 8, 8, 12

// synPatch is a good patch at (y, x): its expected value depends on where
// it is (as a part's edges and busbars differ from its middle), plus noise.
func synPatch(r *rand.Rand, y, x int, out []float32) {
	fy, fx := float64(y)/synH, float64(x)/synW
	for j := range out {
		base := math.Sin(2*math.Pi*fy+float64(j)) + math.Cos(2*math.Pi*fx*float64(j%3+1))
		out[j] = float32(2*base + 0.2*r.NormFloat64())
	}
}

func synImages(r *rand.Rand, images int) ([]float32, []int32, []Position) {
	n := images * synH * synW
	x := make([]float32, n*synDim)
	owner := make([]int32, 0, n)
	at := make([]Position, 0, n)
	for i := range images {
		for y := range synH {
			for xx := range synW {
				row := len(owner)
				synPatch(r, y, xx, x[row*synDim:(row+1)*synDim])
				owner = append(owner, int32(i))
			}
		}
		at = append(at, GridPositions(synH, synW)...)
	}
	return x, owner, at
}

func fitSmall(t *testing.T, images int) (*CFlow, *rand.Rand) {
	t.Helper()
	raw, _ := json.Marshal(smallCFlow)
	d, err := New(MethodCFlow, raw)
	if err != nil {
		t.Fatal(err)
	}
	c := d.(*CFlow)
	r := rand.New(rand.NewPCG(11, 12))
	x, owner, at := synImages(r, images)
	if err := c.FitAt(context.Background(), x, len(owner), synDim, owner, at); err != nil {
		t.Fatal(err)
	}
	return c, r
}

// TestCFlowFlagsMisplacedPatches: in a test image, a 2x2 region holds
// patches that are normal elsewhere on the part (copied from the opposite
// corner) and a 2x2 region holds noise far from any good patch. Both must
// score above every other position: the first only a density that knows
// where a patch is can see.
func TestCFlowFlagsMisplacedPatches(t *testing.T) {
	c, r := fitSmall(t, 16)
	at := GridPositions(synH, synW)
	x := make([]float32, synH*synW*synDim)
	for y := range synH {
		for xx := range synW {
			synPatch(r, y, xx, x[(y*synW+xx)*synDim:(y*synW+xx+1)*synDim])
		}
	}
	odd := map[int]string{}
	for _, p := range [][2]int{{1, 1}, {1, 2}, {2, 1}, {2, 2}} {
		i := p[0]*synW + p[1]
		synPatch(r, synH-1-p[0], synW-1-p[1], x[i*synDim:(i+1)*synDim])
		odd[i] = "misplaced"
	}
	for _, p := range [][2]int{{5, 5}, {5, 6}, {6, 5}, {6, 6}} {
		i := p[0]*synW + p[1]
		for j := range synDim {
			x[i*synDim+j] = float32(6 * r.NormFloat64())
		}
		odd[i] = "off-distribution"
	}
	s, err := c.ScoreAt(context.Background(), x, synH*synW, at, -1)
	if err != nil {
		t.Fatal(err)
	}
	var goodMax float32
	for i, v := range s {
		if odd[i] == "" {
			goodMax = max(goodMax, v)
		}
	}
	for i, kind := range odd {
		if s[i] <= goodMax {
			t.Errorf("%s patch %d scores %.3f, not above the good patches' maximum %.3f", kind, i, s[i], goodMax)
		}
	}
	if min(slices.Min(s), goodMax) <= 0 {
		t.Errorf("scores must be positive: min %v", slices.Min(s))
	}
}

// TestCFlowLeaveOneOut: an image the final flow saw scores lower under it
// than under the fold flow that never saw it, and leave-one-out needs the
// fold flows (a loaded model has none).
func TestCFlowLeaveOneOut(t *testing.T) {
	c, _ := fitSmall(t, 16)
	if len(c.folds) != 4 {
		t.Fatalf("%d fold flows, want 4", len(c.folds))
	}
	r := rand.New(rand.NewPCG(11, 12))
	x, _, _ := synImages(r, 1) // the first training image again
	at := GridPositions(synH, synW)
	n := synH * synW
	in, err := c.ScoreAt(context.Background(), x, n, at, -1)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.ScoreAt(context.Background(), x, n, at, 0)
	if err != nil {
		t.Fatal(err)
	}
	if mean32(out) <= mean32(in) {
		t.Errorf("image 0 left out scores %.4f, in the fit %.4f: the fold flow should find it less likely", mean32(out), mean32(in))
	}
	unseen, err := c.ScoreAt(context.Background(), x, n, at, 99)
	if err != nil || !slices.Equal(unseen, in) {
		t.Errorf("leaving out an image that was never fitted changed the scores (err %v)", err)
	}
	if _, err := c.Score(context.Background(), x, n, -1); err == nil {
		t.Error("Score without positions accepted")
	}
}

func mean32(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x)
	}
	return s / float64(len(v))
}

func TestCFlowSaveLoad(t *testing.T) {
	c, r := fitSmall(t, 8)
	x, _, _ := synImages(r, 1)
	checkSaveLoad(t, MethodCFlow, c, x, GridPositions(synH, synW))
}

// TestCFlowLoadRejectsCorruptTensors: a model file is hostile input; every
// damage is refused with the tensor or setting named, never a panic.
func TestCFlowLoadRejectsCorruptTensors(t *testing.T) {
	c, _ := fitSmall(t, 8)
	good := c.Tensors()
	edit := func(name string, f func(t *model.Tensor) bool) []model.Tensor { return tensorEdit(good, name, f) }
	firstFlow := cflowFlowPrefix + "block0.st2.layer0.weight"
	cfg := c.Cfg
	cfg.Dim, cfg.K = synDim, 8
	checkLoadRefused(t, cfg, func(c CFlowConfig) Density { return &CFlow{Cfg: c} }, []loadCase[CFlowConfig]{
		{"projection missing", nil, edit(tensorCFlowProj, func(*model.Tensor) bool { return false }), synDim, tensorCFlowProj},
		{"projection transposed", nil, edit(tensorCFlowProj, func(t *model.Tensor) bool { t.Shape = []int{8, synDim}; return true }), synDim, "shape"},
		{"mean short", nil, edit(tensorCFlowMean, func(t *model.Tensor) bool { t.Data = t.Data[:3]; return true }), synDim, "shape"},
		{"NaN in the flow", nil, edit(firstFlow, func(t *model.Tensor) bool { t.Data[5] = float32(math.NaN()); return true }), synDim, "non-finite"},
		{"flow weight reshaped", nil, edit(firstFlow, func(t *model.Tensor) bool { t.Shape[0], t.Shape[1] = t.Shape[1], t.Shape[0]; return true }), synDim, "shape"},
		{"flow weight missing", nil, edit(firstFlow, func(*model.Tensor) bool { return false }), synDim, "parameters"},
		{"grid of another width", nil, good, synDim + 1, "grid gives"},
		{"config not fitted", func(c *CFlowConfig) { c.K = 0 }, good, synDim, "reduced to 0"},
		{"config wider than the file", func(c *CFlowConfig) { c.Hidden, c.Blocks = 1024, 32 }, good, synDim, "file holds"},
	})
}

func TestCFlowConfigBounds(t *testing.T) {
	checkConfigsRefused(t, MethodCFlow, []string{`{"proj":1}`, `{"proj":100000}`, `{"freqs":-1}`, `{"freqs":40}`, `{"blocks":0}`,
		`{"hidden":5000}`, `{"depth":9}`, `{"clamp":0}`, `{"steps":0}`, `{"batch":0}`, `{"lr":2}`, `{"folds":1}`,
		`{"dim":-3}`, `{"k":70}`, `{"dim":4,"k":8}`, `{"blocks":"x"}`})
}

func TestEncodePositions(t *testing.T) {
	at := GridPositions(4, 2)
	if len(at) != 8 || at[0] != (Position{0.125, 0.25}) || at[7] != (Position{0.875, 0.75}) {
		t.Fatalf("grid positions %v", at)
	}
	e := encodePositions(at, 2)
	if len(e) != 8*8 {
		t.Fatalf("%d values, want 64", len(e))
	}
	for i := range at {
		for j := range at {
			if i != j && slices.Equal(e[i*8:(i+1)*8], e[j*8:(j+1)*8]) {
				t.Fatalf("positions %v and %v encode alike", at[i], at[j])
			}
		}
	}
}
