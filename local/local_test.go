package local

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/model"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*(1+math.Abs(b)) }

func TestGridHandComputed(t *testing.T) {
	// Tap 0: 1 channel 2x2; tap 1: 2 channels 1x1 (coarser), reduced to 1.
	maps := []features.Map{
		{Tap: 0, C: 1, H: 2, W: 2, Data: []float32{1, 2, 3, 4}},
		{Tap: 1, C: 2, H: 1, W: 1, Data: []float32{10, 20}},
	}
	rows, h, w, dim, err := Grid(maps, GridConfig{Neighbourhood: Windows{3}, Dims: []int{0, 1}})
	if err != nil {
		t.Fatal(err)
	}
	if h != 2 || w != 2 || dim != 2 {
		t.Fatalf("grid %dx%d dim %d, want 2x2 dim 2", h, w, dim)
	}
	// 3x3 mean inside a 2x2 map covers all four cells: 2.5 everywhere; the
	// coarse tap averages its channels (15) and is copied to every cell.
	for p := 0; p < 4; p++ {
		if !near(float64(rows[p*2]), 2.5, 1e-6) || !near(float64(rows[p*2+1]), 15, 1e-6) {
			t.Fatalf("position %d = %v, want [2.5 15]", p, rows[p*2:p*2+2])
		}
	}
}

func TestGridWindowsPerTap(t *testing.T) {
	// Two taps on one 1x3 grid: the first left as it is (window 1), the
	// second averaged over 3, borders counting only what lies inside.
	maps := []features.Map{
		{Tap: 0, C: 1, H: 1, W: 3, Data: []float32{0, 3, 6}},
		{Tap: 1, C: 1, H: 1, W: 3, Data: []float32{0, 3, 6}},
	}
	rows, _, _, dim, err := Grid(maps, GridConfig{Neighbourhood: Windows{1, 3}, Dims: []int{0, 0}})
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{0, 1.5, 3, 3, 6, 4.5}
	if dim != 2 || len(rows) != len(want) {
		t.Fatalf("dim %d, %d values; want 2, %d", dim, len(rows), len(want))
	}
	for i := range want {
		if !near(float64(rows[i]), float64(want[i]), 1e-6) {
			t.Fatalf("rows = %v, want %v", rows, want)
		}
	}
}

func TestWindowsJSON(t *testing.T) {
	tests := []struct {
		in   string
		want Windows
		err  bool
	}{
		{`3`, Windows{3}, false}, // models written before windows were per tap
		{`[3,1]`, Windows{3, 1}, false},
		{` [5] `, Windows{5}, false},
		{`null`, nil, false},
		{`"3"`, nil, true},
		{`3.5`, nil, true},
		{`[3,"a"]`, nil, true},
		{`{"k":3}`, nil, true},
	}
	for _, tc := range tests {
		var c GridConfig
		err := json.Unmarshal([]byte(`{"neighbourhood":`+tc.in+`,"dims":[0]}`), &c)
		if (err != nil) != tc.err {
			t.Errorf("%s: err %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if !tc.err && !slices.Equal(c.Neighbourhood, tc.want) {
			t.Errorf("%s: windows %v, want %v", tc.in, c.Neighbourhood, tc.want)
		}
	}
	b, err := json.Marshal(GridConfig{Neighbourhood: Windows{3, 1}, Dims: []int{0, 0}})
	if err != nil || !strings.Contains(string(b), `"neighbourhood":[3,1]`) {
		t.Fatalf("marshal: %s, %v", b, err)
	}
}

func TestBoxMeanBorders(t *testing.T) {
	// 1x3 map [0 3 6], window 3: borders average only what lies inside.
	got := boxMean([]float32{0, 3, 6}, 1, 1, 3, 3)
	want := []float32{1.5, 3, 4.5}
	for i := range want {
		if !near(float64(got[i]), float64(want[i]), 1e-6) {
			t.Fatalf("boxMean = %v, want %v", got, want)
		}
	}
}

func TestReduceChannels(t *testing.T) {
	tests := []struct {
		c, k int
		want []float32
	}{
		{4, 2, []float32{0.5, 2.5}},
		{3, 2, []float32{0.5, 1.5}}, // runs overlap when k does not divide c
		{3, 3, []float32{0, 1, 2}},
	}
	for _, tc := range tests {
		src := make([]float32, tc.c)
		for i := range src {
			src[i] = float32(i)
		}
		got := reduceChannels(src, tc.c, 1, tc.k)
		for i := range tc.want {
			if !near(float64(got[i]), float64(tc.want[i]), 1e-6) {
				t.Errorf("c=%d k=%d: %v, want %v", tc.c, tc.k, got, tc.want)
			}
		}
	}
}

func TestResizeKeepsConstantsAndCentres(t *testing.T) {
	// A constant map stays constant; a 1x2 ramp sampled at 1x4 cell centres
	// gives the half-pixel interpolation.
	c := resize([]float32{7, 7, 7, 7}, 1, 2, 2, 5, 3)
	for _, v := range c {
		if !near(float64(v), 7, 1e-6) {
			t.Fatalf("constant map resized to %v", c)
		}
	}
	r := resize([]float32{0, 4}, 1, 1, 2, 1, 4)
	want := []float32{0, 1, 3, 4}
	for i := range want {
		if !near(float64(r[i]), float64(want[i]), 1e-6) {
			t.Fatalf("ramp resized to %v, want %v", r, want)
		}
	}
}

func TestGridRejectsBadInput(t *testing.T) {
	good := features.Map{C: 1, H: 1, W: 1, Data: []float32{1}}
	tests := []struct {
		name string
		maps []features.Map
		cfg  GridConfig
		want string
	}{
		{"no maps", nil, GridConfig{Neighbourhood: Windows{3}, Dims: nil}, "no maps"},
		{"even window", []features.Map{good}, GridConfig{Neighbourhood: Windows{2}, Dims: []int{0}}, "odd"},
		{"dims count", []features.Map{good}, GridConfig{Neighbourhood: Windows{1}, Dims: []int{0, 0}}, "channel counts"},
		{"windows count", []features.Map{good}, GridConfig{Neighbourhood: Windows{1, 3}, Dims: []int{0}}, "2 neighbourhood windows for 1 taps"},
		{"no window", []features.Map{good}, GridConfig{Dims: []int{0}}, "0 neighbourhood windows"},
		{"even window of one tap", []features.Map{good, good}, GridConfig{Neighbourhood: Windows{3, 4}, Dims: []int{0, 0}}, "must be odd"},
		{"short data", []features.Map{{C: 2, H: 2, W: 2, Data: []float32{1}}}, GridConfig{Neighbourhood: Windows{1}, Dims: []int{0}}, "holds 1 values"},
	}
	for _, tc := range tests {
		if _, _, _, _, err := Grid(tc.maps, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

func randRows(rng *rand.Rand, n, dim int) []float32 {
	x := make([]float32, n*dim)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func bruteNN(bank []float32, m int, q []float32, dim int, skip func(int) bool) float64 {
	best := math.Inf(1)
	for j := 0; j < m; j++ {
		if skip != nil && skip(j) {
			continue
		}
		var d float64
		for c := 0; c < dim; c++ {
			e := float64(q[c] - bank[j*dim+c])
			d += e * e
		}
		best = min(best, d)
	}
	return math.Sqrt(best)
}

func TestPatchCoreNearestNeighbour(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n, dim, nq = 300, 7, 40
	x := randRows(rng, n, dim)
	owner := make([]int32, n)
	for i := range owner {
		owner[i] = int32(i % 5)
	}
	d, err := New(MethodPatchCore, []byte(`{"max_bank":1000,"proj_dim":0,"seed":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Fit(context.Background(), x, n, dim, owner); err != nil {
		t.Fatal(err)
	}
	q := randRows(rng, nq, dim)
	for _, exclude := range []int32{-1, 3} {
		got, err := d.Score(context.Background(), q, nq, exclude)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < nq; i++ {
			var skip func(int) bool
			if exclude >= 0 {
				skip = func(j int) bool { return owner[j] == exclude }
			}
			want := bruteNN(x, n, q[i*dim:(i+1)*dim], dim, skip)
			if !near(float64(got[i]), want, 1e-4) {
				t.Fatalf("exclude %d row %d: %v, brute force %v", exclude, i, got[i], want)
			}
		}
	}
	// A bank row scores zero against the bank, and not zero once its image
	// is left out.
	s, _ := d.Score(context.Background(), x[:dim], 1, -1)
	l, _ := d.Score(context.Background(), x[:dim], 1, owner[0])
	if s[0] > 1e-3 || l[0] < 1e-2 {
		t.Fatalf("own row scores %v with its image and %v without", s[0], l[0])
	}
}

func TestCoresetCoversFarPoints(t *testing.T) {
	// 500 points near the origin and 3 far away: a coreset of 10 keeps all
	// three outliers (greedy k-centre takes the farthest point each step).
	rng := rand.New(rand.NewPCG(3, 4))
	const dim = 16
	x := make([]float32, 0, 503*dim)
	for i := 0; i < 500; i++ {
		for c := 0; c < dim; c++ {
			x = append(x, float32(0.01*rng.NormFloat64()))
		}
	}
	for k := 0; k < 3; k++ {
		for c := 0; c < dim; c++ {
			v := float32(0)
			if c == k {
				v = 100
			}
			x = append(x, v)
		}
	}
	idx, radius, err := coreset(context.Background(), x, 503, dim, 10, 8, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx) != 10 {
		t.Fatalf("coreset of %d rows, want 10", len(idx))
	}
	// Seven picks among 500 points within ~0.1 of the origin: the rest lie
	// within a fraction of that, far below the outliers' 100.
	if !(radius > 0 && radius < 1) {
		t.Errorf("covering radius %v, want in (0, 1)", radius)
	}
	seen := map[int]bool{}
	for _, i := range idx {
		seen[i] = true
	}
	for k := 500; k < 503; k++ {
		if !seen[k] {
			t.Fatalf("outlier %d not in coreset %v", k, idx)
		}
	}
}

func TestPatchCoreSaveLoad(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n, dim = 64, 5
	x := randRows(rng, n, dim)
	d, _ := New(MethodPatchCore, nil)
	if err := d.Fit(context.Background(), x, n, dim, make([]int32, n)); err != nil {
		t.Fatal(err)
	}
	m := model.FromTensors(model.Manifest{ID: "t"}, d.Tensors())
	d2, err := New(MethodPatchCore, d.Config())
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.Load(m, dim); err != nil {
		t.Fatal(err)
	}
	q := randRows(rng, 3, dim)
	a, _ := d.Score(context.Background(), q, 3, -1)
	b, _ := d2.Score(context.Background(), q, 3, -1)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("loaded bank scores %v, fitted %v", b, a)
		}
	}
	if _, err := d2.Score(context.Background(), q, 3, 0); err == nil {
		t.Fatal("leave-one-out on a loaded bank (no owners) was accepted")
	}
	if err := d2.Load(m, dim+1); err == nil {
		t.Fatal("bank of another width was accepted")
	}
	bad := model.FromTensors(model.Manifest{ID: "t"}, []model.Tensor{{Name: tensorBank, Shape: []int{1, dim}, Data: []float32{1, 2, float32(math.NaN()), 4, 5}}})
	if err := d2.Load(bad, dim); err == nil || !strings.Contains(err.Error(), "non-finite") {
		t.Fatalf("NaN in the bank: err %v", err)
	}
}

func TestPatchCoreConfigBounds(t *testing.T) {
	for _, cfg := range []string{`{"max_bank":0}`, `{"max_bank":-5}`, `{"max_bank":100000000}`, `{"proj_dim":-1}`, `{"max_bank":"x"}`, `{"added":-1}`, `{"radius":-0.5}`} {
		if _, err := New(MethodPatchCore, json.RawMessage(cfg)); err == nil {
			t.Errorf("configuration %s accepted", cfg)
		}
	}
	if _, err := New("nope", nil); err == nil || !strings.Contains(err.Error(), "patchcore") {
		t.Errorf("unknown density: err %v, want the list of names", err)
	}
}

// TestPatchCoreExtend: a confirmed-good part unlike the calibration parts
// joins the bank (only as much of it as covers it), scores low afterwards,
// its configuration counts what was added, and the bank's growth is bounded.
func TestPatchCoreExtend(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(9, 9))
	const dim, perImage = 8, 64
	good := randRows(rng, 8*perImage, dim)
	owner := make([]int32, 8*perImage)
	for i := range owner {
		owner[i] = int32(i / perImage)
	}
	d, err := New(MethodPatchCore, []byte(`{"max_bank":128,"proj_dim":0,"seed":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Fit(ctx, good, len(owner), dim, owner); err != nil {
		t.Fatal(err)
	}
	pc := d.(*PatchCore)
	r := pc.Cfg.Radius
	if !(r > 0) {
		t.Fatalf("no covering radius after a coreset: %v", r)
	}
	// A new good part: half its rows shifted far from every calibration row.
	part := randRows(rng, perImage, dim)
	for i := 0; i < perImage/2; i++ {
		for c := 0; c < dim; c++ {
			part[i*dim+c] += 6
		}
	}
	before, _ := d.Score(ctx, part, perImage, -1)
	added, err := d.(Extender).Extend(ctx, part, perImage)
	if err != nil {
		t.Fatal(err)
	}
	if added < 1 || added > perImage {
		t.Fatalf("added %d rows of %d", added, perImage)
	}
	after, _ := d.Score(ctx, part, perImage, -1)
	for i := range after {
		if float64(after[i]) > r+1e-4 {
			t.Errorf("row %d: distance %v after extending, want <= the covering radius %v (before %v)", i, after[i], r, before[i])
		}
	}
	var cfg PatchCoreConfig
	if err := json.Unmarshal(d.Config(), &cfg); err != nil || cfg.Added != added || cfg.Rows != 128+added {
		t.Errorf("config after extending: %+v (%v), want %d added of %d rows", cfg, err, added, 128+added)
	}
	// Leave-one-out still works on a fitted bank with added rows.
	if _, err := d.Score(ctx, part, perImage, 0); err != nil {
		t.Errorf("leave-one-out after extending: %v", err)
	}
	// A part far from everything, repeatedly: the bank stops growing with a
	// clear error and is unchanged by the refused call.
	var refused error
	for k := 0; k < 20 && refused == nil; k++ {
		far := randRows(rng, perImage, dim)
		for i := range far {
			far[i] += float32(20 * (k + 1))
		}
		_, refused = d.(Extender).Extend(ctx, far, perImage)
	}
	if refused == nil || !strings.Contains(refused.Error(), "recalibrate") {
		t.Fatalf("bank grew without bound: last error %v", refused)
	}
	if err := json.Unmarshal(d.Config(), &cfg); err != nil || cfg.Added > int(MaxExtend*128) {
		t.Errorf("added %d rows, beyond the bound %d", cfg.Added, int(MaxExtend*128))
	}
}

// tensorEdit is a copy of good with the named tensor changed by f, or left
// out when f says false.
func tensorEdit(good []model.Tensor, name string, f func(t *model.Tensor) bool) []model.Tensor {
	var out []model.Tensor
	for _, t := range good {
		t.Data, t.Shape = slices.Clone(t.Data), slices.Clone(t.Shape)
		if t.Name == name && !f(&t) {
			continue
		}
		out = append(out, t)
	}
	return out
}

// loadCase is one damaged model file: a change to the stored configuration
// C, the tensors, the grid's width, and what the error must name.
type loadCase[C any] struct {
	name    string
	cfg     func(c *C)
	tensors []model.Tensor
	dim     int
	want    string
}

// checkLoadRefused loads each case into the density build makes of its
// configuration (base changed by the case) and wants an error naming the
// damage, never a panic.
func checkLoadRefused[C any](t *testing.T, base C, build func(C) Density, cases []loadCase[C]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cc := base
			if tc.cfg != nil {
				tc.cfg(&cc)
			}
			err := build(cc).Load(model.FromTensors(model.Manifest{ID: "t"}, tc.tensors), tc.dim)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// checkConfigsRefused wants the method's factory to refuse every
// configuration and to take its defaults.
func checkConfigsRefused(t *testing.T, method string, cfgs []string) {
	t.Helper()
	for _, cfg := range cfgs {
		if _, err := New(method, json.RawMessage(cfg)); err == nil {
			t.Errorf("configuration %s accepted", cfg)
		}
	}
	if _, err := New(method, nil); err != nil {
		t.Errorf("defaults refused: %v", err)
	}
}

// checkSaveLoad wants a density loaded from d's configuration and tensors
// to score the rows exactly as d does, and to refuse leave-one-out (it has
// only what the model file keeps).
func checkSaveLoad(t *testing.T, method string, d Positional, x []float32, at []Position) {
	t.Helper()
	d2, err := New(method, d.Config())
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.Load(model.FromTensors(model.Manifest{ID: "t"}, d.Tensors()), len(x)/len(at)); err != nil {
		t.Fatal(err)
	}
	p2 := d2.(Positional)
	a, _ := d.ScoreAt(context.Background(), x, len(at), at, -1)
	b, err := p2.ScoreAt(context.Background(), x, len(at), at, -1)
	if err != nil || !slices.Equal(a, b) {
		t.Fatalf("loaded %s scores %v (err %v), fitted %v", method, b, err, a)
	}
	if _, err := p2.ScoreAt(context.Background(), x, len(at), at, 0); err == nil {
		t.Fatalf("leave-one-out on a loaded %s was accepted", method)
	}
}
