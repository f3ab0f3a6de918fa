package local

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/model"
)

func newPaDiM(t testing.TB, cfg PaDiMConfig) *PaDiM {
	t.Helper()
	raw, _ := json.Marshal(cfg)
	d, err := New(MethodPaDiM, raw)
	if err != nil {
		t.Fatal(err)
	}
	return d.(*PaDiM)
}

// smallPaDiM keeps 8 of the synthetic grids' 12 channels, so the channel
// subset is exercised too.
var smallPaDiM = PaDiMConfig{Dims: 8, Radius: 1, Shrink: 0.1, Ridge: 0.01, Seed: 1}

// TestPaDiMMahalanobisByHand: a 1x2 grid of 2-d patches, radius 1 (each
// cell's covariance pools both cells), worked out with the 2x2 inverse.
func TestPaDiMMahalanobisByHand(t *testing.T) {
	const shrink, ridge = 0.25, 0.1
	// Four images, one patch per cell each: cell 0 then cell 1.
	x := []float32{1, 2, 0, 1, 3, 1, 2, 0, 2, 4, 1, 3, 0, 1, 1, 2}
	owner := []int32{0, 0, 1, 1, 2, 2, 3, 3}
	at := slices.Concat(GridPositions(1, 2), GridPositions(1, 2), GridPositions(1, 2), GridPositions(1, 2))
	p := newPaDiM(t, PaDiMConfig{Dims: 2, Radius: 1, Shrink: shrink, Ridge: ridge, Seed: 1})
	if err := p.FitAt(context.Background(), x, 8, 2, owner, at); err != nil {
		t.Fatal(err)
	}
	// Cell 0's own mean: rows 0, 2, 4, 6.
	m0 := [2]float64{(1 + 3 + 2 + 0) / 4.0, (2 + 1 + 4 + 1) / 4.0}
	// Covariance of all eight rows about their mean, divided by n-1.
	var mu [2]float64
	for i := range 8 {
		mu[0] += float64(x[2*i]) / 8
		mu[1] += float64(x[2*i+1]) / 8
	}
	var sxx, syy, sxy float64
	for i := range 8 {
		dx, dy := float64(x[2*i])-mu[0], float64(x[2*i+1])-mu[1]
		sxx, syy, sxy = sxx+dx*dx/7, syy+dy*dy/7, sxy+dx*dy/7
	}
	sxy *= 1 - shrink
	r := ridge * (sxx + syy) / 2
	sxx, syy = sxx+r, syy+r
	det := sxx*syy - sxy*sxy
	q := [2]float32{4, -1}
	dx, dy := float64(q[0])-m0[0], float64(q[1])-m0[1]
	want := math.Sqrt((syy*dx*dx - 2*sxy*dx*dy + sxx*dy*dy) / det)
	got, err := p.ScoreAt(context.Background(), []float32{q[0], q[1], 0, 0}, 2, GridPositions(1, 2), -1)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(float64(got[0])-want) > 1e-5*want {
		t.Fatalf("Mahalanobis distance %v, by hand %v", got[0], want)
	}
}

// synPaDiM is synImages with extra rows per image at random cells (as
// calibration's transformed views add), so cells hold several rows of one
// image.
func synPaDiM(r *rand.Rand, images int) ([]float32, []int32, []Position) {
	x, owner, at := synImages(r, images)
	grid := GridPositions(synH, synW)
	row := make([]float32, synDim)
	for i := range images {
		for range 20 {
			c := r.IntN(len(grid))
			synPatch(r, c/synW, c%synW, row)
			x = append(x, row...)
			owner = append(owner, int32(i))
			at = append(at, grid[c])
		}
	}
	return x, owner, at
}

// TestPaDiMLeaveOneOut: scores with an image left out equal those of a fit
// without that image, and a loaded model refuses leave-one-out.
func TestPaDiMLeaveOneOut(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	x, owner, at := synPaDiM(r, 6)
	all := newPaDiM(t, smallPaDiM)
	if err := all.FitAt(context.Background(), x, len(owner), synDim, owner, at); err != nil {
		t.Fatal(err)
	}
	q, _, qat := synImages(r, 1)
	n := len(qat)
	for _, ex := range []int32{0, 2, 5} {
		var rx []float32
		var ro []int32
		var rat []Position
		for i, o := range owner {
			if o != ex {
				rx, ro, rat = append(rx, x[i*synDim:(i+1)*synDim]...), append(ro, o), append(rat, at[i])
			}
		}
		without := newPaDiM(t, smallPaDiM)
		if err := without.FitAt(context.Background(), rx, len(ro), synDim, ro, rat); err != nil {
			t.Fatal(err)
		}
		want, err := without.ScoreAt(context.Background(), q, n, qat, -1)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second call comes from the cache
			got, err := all.ScoreAt(context.Background(), q, n, qat, ex)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*float64(want[i])+1e-5 {
					t.Fatalf("image %d left out: row %d scores %v, a fit without it %v", ex, i, got[i], want[i])
				}
			}
		}
	}
	plain, _ := all.ScoreAt(context.Background(), q, n, qat, -1)
	unseen, err := all.ScoreAt(context.Background(), q, n, qat, 99)
	if err != nil || !slices.Equal(plain, unseen) {
		t.Errorf("leaving out an image that was never fitted changed the scores (err %v)", err)
	}
	if _, err := all.Score(context.Background(), q, n, -1); err == nil {
		t.Error("Score without positions accepted")
	}
}

// TestPaDiMFlagsMisplacedPatches: as for the conditional flow, patches
// normal elsewhere on the part and patches far from any good one both score
// above every good position.
func TestPaDiMFlagsMisplacedPatches(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	x, owner, at := synImages(r, 16)
	p := newPaDiM(t, PaDiMConfig{Dims: 12, Radius: 1, Shrink: 0.1, Ridge: 0.01, Seed: 1})
	if err := p.FitAt(context.Background(), x, len(owner), synDim, owner, at); err != nil {
		t.Fatal(err)
	}
	q, _, qat := synImages(r, 1)
	odd := map[int]bool{}
	for _, c := range [][2]int{{1, 1}, {1, 2}} {
		i := c[0]*synW + c[1]
		synPatch(r, synH-1-c[0], synW-1-c[1], q[i*synDim:(i+1)*synDim])
		odd[i] = true
	}
	for _, c := range [][2]int{{5, 5}, {6, 6}} {
		i := c[0]*synW + c[1]
		for j := range synDim {
			q[i*synDim+j] = float32(6 * r.NormFloat64())
		}
		odd[i] = true
	}
	s, err := p.ScoreAt(context.Background(), q, len(qat), qat, -1)
	if err != nil {
		t.Fatal(err)
	}
	var goodMax float32
	for i, v := range s {
		if !odd[i] {
			goodMax = max(goodMax, v)
		}
	}
	for i := range odd {
		if s[i] <= goodMax {
			t.Errorf("odd patch %d scores %.3f, not above the good patches' maximum %.3f", i, s[i], goodMax)
		}
	}
}

func fitPaDiM(t testing.TB) *PaDiM {
	r := rand.New(rand.NewPCG(7, 8))
	x, owner, at := synImages(r, 8)
	p := newPaDiM(t, smallPaDiM)
	if err := p.FitAt(context.Background(), x, len(owner), synDim, owner, at); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPaDiMSaveLoad(t *testing.T) {
	x, _, at := synImages(rand.New(rand.NewPCG(1, 1)), 1)
	checkSaveLoad(t, MethodPaDiM, fitPaDiM(t), x, at)
}

// TestPaDiMGrids: a grid a cell off the fitted one is scored at the nearest
// cells; one twice as fine is refused, as are fit positions off any grid.
func TestPaDiMGrids(t *testing.T) {
	p := fitPaDiM(t)
	q := make([]float32, (synH+1)*synW*synDim)
	if _, err := p.ScoreAt(context.Background(), q, (synH+1)*synW, GridPositions(synH+1, synW), -1); err != nil {
		t.Errorf("a grid one row taller refused: %v", err)
	}
	q = make([]float32, 4*synH*synW*synDim)
	_, err := p.ScoreAt(context.Background(), q, 4*synH*synW, GridPositions(2*synH, 2*synW), -1)
	if err == nil || !strings.Contains(err.Error(), "recalibrate") {
		t.Errorf("a grid twice as fine: err %v", err)
	}
	at := GridPositions(2, 2)
	at[3].X = 0.6
	if err := newPaDiM(t, smallPaDiM).FitAt(context.Background(), make([]float32, 4*synDim), 4, synDim, []int32{0, 0, 0, 0}, at); err == nil {
		t.Error("fit positions off the grid accepted")
	}
}

// TestPaDiMLoadRejectsCorruptTensors: a model file is hostile input; every
// damage is refused with the tensor or setting named, never a panic.
func TestPaDiMLoadRejectsCorruptTensors(t *testing.T) {
	p := fitPaDiM(t)
	good := p.Tensors()
	edit := func(name string, f func(t *model.Tensor) bool) []model.Tensor { return tensorEdit(good, name, f) }
	set := func(name string, i int, v float32) []model.Tensor {
		return edit(name, func(t *model.Tensor) bool { t.Data[i] = v; return true })
	}
	checkLoadRefused(t, p.Cfg, func(c PaDiMConfig) Density { return &PaDiM{Cfg: c} }, []loadCase[PaDiMConfig]{
		{"channels missing", nil, edit(tensorPaDiMChannels, func(*model.Tensor) bool { return false }), synDim, tensorPaDiMChannels},
		{"channel out of range", nil, set(tensorPaDiMChannels, 7, synDim), synDim, "channel"},
		{"channel repeated", nil, set(tensorPaDiMChannels, 1, good[0].Data[0]), synDim, "channel"},
		{"channel not whole", nil, set(tensorPaDiMChannels, 0, 0.5), synDim, "channel"},
		{"channel negative", nil, set(tensorPaDiMChannels, 0, -1), synDim, "channel"},
		{"mean short", nil, edit(tensorPaDiMMean, func(t *model.Tensor) bool { t.Data = t.Data[:5]; return true }), synDim, "shape"},
		{"factor transposed", nil, edit(tensorPaDiMFactor, func(t *model.Tensor) bool { t.Shape[0], t.Shape[1] = t.Shape[1], t.Shape[0]; return true }), synDim, "shape"},
		{"NaN in a factor", nil, set(tensorPaDiMFactor, 9, float32(math.NaN())), synDim, "non-finite"},
		{"infinite mean", nil, set(tensorPaDiMMean, 3, float32(math.Inf(-1))), synDim, "non-finite"},
		{"grid of another width", nil, good, synDim + 1, "grid gives"},
		{"config on a larger grid", func(c *PaDiMConfig) { c.H = 16 }, good, synDim, "shape"},
		{"config keeping more channels", func(c *PaDiMConfig) { c.K = 12; c.Dims = 12 }, good, synDim, "shape"},
		{"config not fitted", func(c *PaDiMConfig) { c.K = 0 }, good, synDim, "kept"},
	})
}

func TestPaDiMConfigBounds(t *testing.T) {
	checkConfigsRefused(t, MethodPaDiM, []string{`{"dims":0}`, `{"dims":5000}`, `{"radius":-1}`, `{"radius":20}`, `{"shrink":1.5}`,
		`{"shrink":-0.1}`, `{"ridge":0}`, `{"ridge":2}`, `{"dim":-1}`, `{"k":200}`, `{"dim":4,"k":8}`, `{"h":-1}`,
		`{"w":5000}`, `{"dims":1024,"k":1024,"dim":1024,"h":1024,"w":1024}`, `{"dims":"x"}`})
}

// FuzzPaDiMLoad: any stored configuration with a fitted model's tensors, or
// with tensors reshaped, loads or is refused, and what loads scores finite
// values.
func FuzzPaDiMLoad(f *testing.F) {
	p := fitPaDiM(f)
	f.Add([]byte(p.Config()), 0, 0)
	f.Add([]byte(`{"dims":8,"radius":1,"shrink":0.1,"ridge":0.01,"k":8,"dim":12,"h":4,"w":16}`), 1, 2)
	x, _, at := synImages(rand.New(rand.NewPCG(1, 1)), 1)
	f.Fuzz(func(t *testing.T, cfg []byte, which, shape int) {
		d, err := New(MethodPaDiM, cfg)
		if err != nil {
			return
		}
		ts := slices.Clone(p.Tensors())
		if i := which % (len(ts) + 1); i >= 0 && i < len(ts) && shape > 0 {
			ts[i].Shape = []int{shape % 4096, len(ts[i].Data) / max(1, shape%4096)}
		}
		if d.Load(model.FromTensors(model.Manifest{ID: "f"}, ts), synDim) != nil {
			return
		}
		s, err := d.(*PaDiM).ScoreAt(context.Background(), x, len(at), at, -1)
		if err != nil {
			return
		}
		for _, v := range s {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("score %v", v)
			}
		}
	})
}

// BenchmarkPaDiM: the default configuration on a 56x56 grid of 512 values
// (the default trunk's taps at 448 px), fitted on 16 images; one op scores
// one image. The model must stay under 100 MB.
func BenchmarkPaDiM(b *testing.B) {
	const h, w, dim, images = 56, 56, 512, 16
	r := rand.New(rand.NewPCG(1, 2))
	n := images * h * w
	x := make([]float32, n*dim)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	owner := make([]int32, n)
	var at []Position
	for i := range images {
		for j := range h * w {
			owner[i*h*w+j] = int32(i)
		}
		at = append(at, GridPositions(h, w)...)
	}
	p := newPaDiM(b, DefaultPaDiM)
	if err := p.FitAt(context.Background(), x, n, dim, owner, at); err != nil {
		b.Fatal(err)
	}
	size := 0
	for _, t := range p.Tensors() {
		size += 4 * len(t.Data)
	}
	if size > 100<<20 {
		b.Fatalf("model of %d bytes", size)
	}
	q := x[:h*w*dim]
	grid := GridPositions(h, w)
	for b.Loop() {
		if _, err := p.ScoreAt(context.Background(), q, h*w, grid, -1); err != nil {
			b.Fatal(err)
		}
	}
	// After the loop: b.Loop's first call clears metrics reported before it.
	b.ReportMetric(float64(size)/1e6, "model-MB")
}
