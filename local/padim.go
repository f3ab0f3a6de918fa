package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/lapack/gonum"

	"github.com/inspectd/inspectd/model"
)

// PaDiM is a Gaussian of the good parts' patches per grid position (Defard
// et al., "PaDiM: a patch distribution modeling framework", 2021); a
// patch's score is its Mahalanobis distance to the Gaussian of its cell. It
// is the cheap baseline beside the memory bank and the conditional flow:
// no search and no training, one small matrix-vector product per patch.
//
// As in the paper, the patch vectors are reduced to a seeded random subset
// of Dims channels. Sixteen good parts give sixteen samples per cell, too
// few for a covariance of 100 channels, so each cell's covariance pools the
// cells within Radius of it (3x3 cells: 144 samples), which also lets a
// patch look like its neighbours' (parts sit a cell apart from image to
// image), and is shrunk by a fixed share towards its diagonal plus a ridge.
// The mean is the cell's own.
//
// Leave-one-out: Fit keeps the reduced rows and per-cell sums in memory
// (not saved), and ScoreAt with exclude subtracts that image's rows from
// the sums, so its scores are those of a fit without the image.
type PaDiM struct {
	Cfg   PaDiMConfig
	chans []int     // kept channels of the patch vector, ascending
	mean  []float32 // cells x k
	fac   []float32 // cells x k(k+1)/2: the packed lower triangle of L^-1, cov = L L^T
	dim   int

	st *padimStats // only after Fit

	mu      sync.Mutex // guards the leave-one-out cache
	looFor  int32
	looMean []float32
	looFac  []float32
}

// padimStats are the sums leave-one-out subtracts from.
type padimStats struct {
	rows  []float64 // n x k reduced rows
	owner []int32
	at    [][]int32 // rows of each cell
	count []int     // cells
	sum   []float64 // cells x k
	outer []float64 // cells x k x k (lower triangle)
}

// PaDiMConfig is stored in the model.
type PaDiMConfig struct {
	// Dims is the number of channels kept (a seeded random subset, the
	// paper's reduction; all of them when the patch vector is narrower).
	Dims int `json:"dims"`
	// Radius is how many cells around a position its covariance pools.
	Radius int `json:"radius"`
	// Shrink is the share by which covariances are pulled towards their
	// diagonal (a fixed share, not Ledoit-Wolf's estimate: at 144 samples
	// for 100 channels the estimate is itself noisy from cell to cell).
	Shrink float64 `json:"shrink"`
	// Ridge is added to the diagonal as a share of the mean variance, so
	// that it is the same whatever the features' scale.
	Ridge float64 `json:"ridge"`
	Seed  int64   `json:"seed"`
	// Dim (the patch vector's width), K (channels kept) and the grid H x W
	// are set by Fit.
	Dim int `json:"dim,omitempty"`
	K   int `json:"k,omitempty"`
	H   int `json:"h,omitempty"`
	W   int `json:"w,omitempty"`
}

// Method name of PaDiM in model files.
const MethodPaDiM = "padim"

const (
	tensorPaDiMChannels = "padim.channels"
	tensorPaDiMMean     = "padim.mean"
	tensorPaDiMFactor   = "padim.factor"
)

// DefaultPaDiM is PaDiM's default configuration.
var DefaultPaDiM = PaDiMConfig{Dims: 100, Radius: 1, Shrink: 0.1, Ridge: 0.01, Seed: 1}

// Bounds of a stored configuration: a model file is hostile, and these keep
// what it declares small enough to check before its tensors are read.
const (
	maxPaDiMDims   = 1024
	maxPaDiMRadius = 8
	maxPaDiMGrid   = 1024
	// maxPaDiMValues bounds the stored factors (cells x k(k+1)/2): 256 MB.
	maxPaDiMValues = 1 << 26
)

func init() {
	Register(MethodPaDiM, func(raw json.RawMessage) (Density, error) {
		p := &PaDiM{Cfg: DefaultPaDiM, looFor: -1}
		if err := decodeConfig(raw, MethodPaDiM, &p.Cfg); err != nil {
			return nil, err
		}
		return p, nil
	})
}

func (c PaDiMConfig) validate() error {
	switch {
	case c.Dims < 1 || c.Dims > maxPaDiMDims:
		return fmt.Errorf("padim: dims %d outside 1..%d", c.Dims, maxPaDiMDims)
	case c.Radius < 0 || c.Radius > maxPaDiMRadius:
		return fmt.Errorf("padim: radius %d outside 0..%d", c.Radius, maxPaDiMRadius)
	case !(c.Shrink >= 0 && c.Shrink <= 1):
		return fmt.Errorf("padim: shrink %v outside [0, 1]", c.Shrink)
	case !(c.Ridge > 0 && c.Ridge <= 1):
		return fmt.Errorf("padim: ridge %v outside (0, 1]", c.Ridge)
	case c.Dim < 0 || c.Dim > 1<<16:
		return fmt.Errorf("padim: dim %d outside 0..65536", c.Dim)
	case c.K < 0 || c.K > c.Dims || (c.Dim > 0 && c.K > c.Dim):
		return fmt.Errorf("padim: %d channels kept, outside 0..%d (dims) and 0..dim %d", c.K, c.Dims, c.Dim)
	case c.H < 0 || c.H > maxPaDiMGrid || c.W < 0 || c.W > maxPaDiMGrid:
		return fmt.Errorf("padim: grid %dx%d outside 0..%d a side", c.W, c.H, maxPaDiMGrid)
	case c.H*c.W*tri(c.K) > maxPaDiMValues:
		return fmt.Errorf("padim: %dx%d cells of %d channels need more than %d values", c.W, c.H, c.K, maxPaDiMValues)
	}
	return nil
}

func tri(k int) int { return k * (k + 1) / 2 }

// Config implements Density.
func (p *PaDiM) Config() json.RawMessage {
	b, _ := json.Marshal(p.Cfg)
	return b
}

var errPaDiMPositions = errors.New("padim keeps a Gaussian per grid position: fit and score it through FitAt and ScoreAt")

// Fit implements Density; PaDiM needs positions (FitAt).
func (p *PaDiM) Fit(context.Context, []float32, int, int, []int32) error { return errPaDiMPositions }

// Score implements Density; PaDiM needs positions (ScoreAt).
func (p *PaDiM) Score(context.Context, []float32, int, int32) ([]float32, error) {
	return nil, errPaDiMPositions
}

// padimChannels is the seeded subset of k of dim channels, ascending.
func padimChannels(dim, k int, seed int64) []int {
	if k >= dim {
		out := make([]int, dim)
		for i := range out {
			out[i] = i
		}
		return out
	}
	perm := rand.New(rand.NewPCG(uint64(seed), 0x9ad1)).Perm(dim)[:k]
	slices.Sort(perm)
	return perm
}

// gridOf reads the grid the positions are cell centres of from the
// smallest ones, (0.5/h, 0.5/w), as GridPositions makes them.
func gridOf(at []Position) (h, w int, err error) {
	minY, minX := float32(1), float32(1)
	for i, p := range at {
		if !(p.Y > 0 && p.Y < 1 && p.X > 0 && p.X < 1) {
			return 0, 0, fmt.Errorf("padim: position %d (%v, %v) outside the grid's (0, 1)", i, p.Y, p.X)
		}
		minY, minX = min(minY, p.Y), min(minX, p.X)
	}
	h, w = int(math.Round(0.5/float64(minY))), int(math.Round(0.5/float64(minX)))
	if h > maxPaDiMGrid || w > maxPaDiMGrid {
		return 0, 0, fmt.Errorf("padim: positions of a %dx%d grid, more than %d a side", w, h, maxPaDiMGrid)
	}
	return h, w, nil
}

// cellOf maps a position to the nearest cell of an h x w grid.
func cellOf(p Position, h, w int) int {
	y := min(max(int(p.Y*float32(h)), 0), h-1)
	x := min(max(int(p.X*float32(w)), 0), w-1)
	return y*w + x
}

// FitAt implements Positional. The grid is the one the positions are cell
// centres of; every position must be one.
func (p *PaDiM) FitAt(ctx context.Context, x []float32, n, dim int, owner []int32, at []Position) error {
	if n < 1 || dim < 1 || len(x) != n*dim || len(owner) != n || len(at) != n {
		return fmt.Errorf("padim: %d values, %d owners and %d positions for %d rows of %d", len(x), len(owner), len(at), n, dim)
	}
	if i := firstBad(x); i >= 0 {
		return fmt.Errorf("padim: patch value %d (row %d) is %v", i, i/dim, x[i])
	}
	h, w, err := gridOf(at)
	if err != nil {
		return err
	}
	for i, q := range at {
		fy, fx := float64(q.Y)*float64(h)-0.5, float64(q.X)*float64(w)-0.5
		if math.Abs(fy-math.Round(fy)) > 0.01 || math.Abs(fx-math.Round(fx)) > 0.01 {
			return fmt.Errorf("padim: position %d (%v, %v) is not a cell centre of the %dx%d grid the others make", i, q.Y, q.X, w, h)
		}
	}
	k := min(p.Cfg.Dims, dim)
	cfg := p.Cfg
	cfg.Dim, cfg.K, cfg.H, cfg.W = dim, k, h, w
	if err := cfg.validate(); err != nil {
		return err
	}
	chans := padimChannels(dim, k, p.Cfg.Seed)
	cells := h * w
	st := &padimStats{rows: make([]float64, n*k), owner: slices.Clone(owner), at: make([][]int32, cells),
		count: make([]int, cells), sum: make([]float64, cells*k), outer: make([]float64, cells*k*k)}
	for i := range n {
		z := st.rows[i*k : (i+1)*k]
		for j, c := range chans {
			z[j] = float64(x[i*dim+c])
		}
		c := cellOf(at[i], h, w)
		st.at[c] = append(st.at[c], int32(i))
		st.count[c]++
		addRow(st.sum[c*k:(c+1)*k], st.outer[c*k*k:(c+1)*k*k], z, 1)
	}
	p.Cfg, p.chans, p.dim, p.st = cfg, chans, dim, st
	mean, fac, err := p.gaussians(ctx, -1)
	if err != nil {
		p.st = nil
		return err
	}
	p.mean, p.fac = mean, fac
	p.mu.Lock()
	p.looFor, p.looMean, p.looFac = -1, nil, nil
	p.mu.Unlock()
	return nil
}

// addRow adds s times z to sum and z z^T to the lower triangle of outer.
func addRow(sum, outer, z []float64, s float64) {
	k := len(z)
	for a, va := range z {
		sum[a] += s * va
		row := outer[a*k : a*k+a+1]
		sv := s * va
		for b := range row {
			row[b] += sv * z[b]
		}
	}
}

// gaussians are the mean and packed inverse factor of every cell, from the
// sums less the rows of image exclude (< 0: none). Cells are shared out
// among the cores.
func (p *PaDiM) gaussians(ctx context.Context, exclude int32) ([]float32, []float32, error) {
	k, cells := p.Cfg.K, p.Cfg.H*p.Cfg.W
	mean := make([]float32, cells*k)
	fac := make([]float32, cells*tri(k))
	workers := min(runtime.GOMAXPROCS(0), cells)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for wk := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := newGaussWork(k)
			for i, c := 0, wk; c < cells; i, c = i+1, c+workers {
				if i%64 == 0 {
					if err := ctx.Err(); err != nil {
						errs[wk] = err
						return
					}
				}
				if err := p.gaussian(g, c, exclude, mean[c*k:(c+1)*k], fac[c*tri(k):(c+1)*tri(k)]); err != nil {
					errs[wk] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return mean, fac, nil
}

type gaussWork struct {
	sum, outer, cov, m []float64
}

func newGaussWork(k int) *gaussWork {
	return &gaussWork{sum: make([]float64, k), outer: make([]float64, k*k), cov: make([]float64, k*k), m: make([]float64, k)}
}

// gaussian fills cell c's mean and packed L^-1.
func (p *PaDiM) gaussian(g *gaussWork, c int, exclude int32, mean, fac []float32) error {
	st, k, h, w, r := p.st, p.Cfg.K, p.Cfg.H, p.Cfg.W, p.Cfg.Radius
	// The cell's own mean.
	clear(g.m)
	cn := st.count[c]
	for j := range k {
		g.m[j] = st.sum[c*k+j]
	}
	for _, i := range st.at[c] {
		if st.owner[i] == exclude {
			cn--
			for j, v := range st.rows[int(i)*k : (int(i)+1)*k] {
				g.m[j] -= v
			}
		}
	}
	if cn < 1 {
		return fmt.Errorf("padim: cell %d of %dx%d has no good patch left", c, w, h)
	}
	for j := range k {
		g.m[j] /= float64(cn)
		mean[j] = float32(g.m[j])
	}
	// The neighbourhood's sums.
	clear(g.sum)
	clear(g.outer)
	n := 0
	cy, cx := c/w, c%w
	for y := max(0, cy-r); y <= min(h-1, cy+r); y++ {
		for x := max(0, cx-r); x <= min(w-1, cx+r); x++ {
			j := y*w + x
			n += st.count[j]
			for a, v := range st.sum[j*k : (j+1)*k] {
				g.sum[a] += v
			}
			for a, v := range st.outer[j*k*k : (j+1)*k*k] {
				g.outer[a] += v
			}
			for _, i := range st.at[j] {
				if st.owner[i] == exclude {
					n--
					addRow(g.sum, g.outer, st.rows[int(i)*k:(int(i)+1)*k], -1)
				}
			}
		}
	}
	// Covariance about the neighbourhood's mean, shrunk towards its
	// diagonal, plus the ridge.
	inv := 1 / float64(max(n-1, 1))
	var diag float64
	for a := range k {
		ma := g.sum[a] / float64(n)
		for b := 0; b <= a; b++ {
			v := (g.outer[a*k+b] - float64(n)*ma*(g.sum[b]/float64(n))) * inv
			if a != b {
				v *= 1 - p.Cfg.Shrink
			} else {
				v = max(v, 0)
				diag += v
			}
			g.cov[a*k+b] = v
		}
	}
	ridge := p.Cfg.Ridge*diag/float64(k) + 1e-12
	for a := range k {
		g.cov[a*k+a] += ridge
	}
	impl := gonum.Implementation{}
	if !impl.Dpotrf(blas.Lower, k, g.cov, k) {
		return fmt.Errorf("padim: covariance of cell %d is not positive definite", c)
	}
	if !impl.Dtrtri(blas.Lower, blas.NonUnit, k, g.cov, k) {
		return fmt.Errorf("padim: covariance factor of cell %d is singular", c)
	}
	o := 0
	for a := range k {
		for b := 0; b <= a; b++ {
			fac[o] = float32(g.cov[a*k+b])
			o++
		}
	}
	return nil
}

// ScoreAt implements Positional: each row's Mahalanobis distance to the
// Gaussian of the fitted cell nearest its position. The rows' grid (read
// from their smallest positions) may differ from the fitted one by a cell
// or an eighth a side, as aspect-true crops of one product of slightly
// different sizes do; each row then takes the cell at its place in the
// part. A grid more different than that is another product or another
// scale, and is refused.
func (p *PaDiM) ScoreAt(ctx context.Context, x []float32, n int, at []Position, exclude int32) ([]float32, error) {
	if p.mean == nil {
		return nil, errors.New("padim: not fitted")
	}
	if n < 0 || len(x) != n*p.dim || len(at) != n {
		return nil, fmt.Errorf("padim: %d values and %d positions for %d rows of %d", len(x), len(at), n, p.dim)
	}
	if n == 0 {
		return []float32{}, nil
	}
	h, w, err := gridOf(at)
	if err != nil {
		return nil, err
	}
	H, W := p.Cfg.H, p.Cfg.W
	near := func(a, b int) bool { return abs(a-b) <= max(1, b/8) }
	if !near(h, H) || !near(w, W) {
		return nil, fmt.Errorf("padim: a %dx%d grid of patches; the model was fitted on %dx%d: recalibrate on parts of this size and scale", w, h, W, H)
	}
	mean, fac := p.mean, p.fac
	if exclude >= 0 {
		if mean, fac, err = p.leaveOut(ctx, exclude); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k := p.Cfg.K
	z := make([]float64, k)
	out := make([]float32, n)
	for i := range n {
		c := cellOf(at[i], H, W)
		row, m := x[i*p.dim:(i+1)*p.dim], mean[c*k:(c+1)*k]
		for j, ch := range p.chans {
			z[j] = float64(row[ch]) - float64(m[j])
		}
		out[i] = float32(min(math.Sqrt(mahalanobis2(fac[c*tri(k):(c+1)*tri(k)], z)), math.MaxFloat32))
	}
	return out, nil
}

// mahalanobis2 is |L^-1 z|^2 with L^-1 packed by rows.
func mahalanobis2(fac []float32, z []float64) float64 {
	var ss float64
	o := 0
	for a := range z {
		var s float64
		for b, v := range fac[o : o+a+1] {
			s += float64(v) * z[b]
		}
		o += a + 1
		ss += s * s
	}
	return ss
}

func abs(a int) int {
	if a < 0 {
		return -a
	}
	return a
}

// leaveOut returns the Gaussians without image exclude, computed once per
// image and kept for the calls that follow (calibration scores an image's
// views, then moves on to the next image).
func (p *PaDiM) leaveOut(ctx context.Context, exclude int32) ([]float32, []float32, error) {
	if p.st == nil {
		return nil, nil, errors.New("padim: leave-one-out needs the good patches' sums (only after Fit)")
	}
	if !slices.Contains(p.st.owner, exclude) {
		// An image the density never saw has nothing to leave out.
		return p.mean, p.fac, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.looFor == exclude && p.looMean != nil {
		return p.looMean, p.looFac, nil
	}
	mean, fac, err := p.gaussians(ctx, exclude)
	if err != nil {
		return nil, nil, fmt.Errorf("padim: leaving image %d out: %w", exclude, err)
	}
	p.looFor, p.looMean, p.looFac = exclude, mean, fac
	return mean, fac, nil
}

// Tensors implements Density: the kept channels, means and factors (the
// sums serve calibration only).
func (p *PaDiM) Tensors() []model.Tensor {
	if p.mean == nil {
		return nil
	}
	k, cells := p.Cfg.K, p.Cfg.H*p.Cfg.W
	ch := make([]float32, k)
	for i, c := range p.chans {
		ch[i] = float32(c)
	}
	return []model.Tensor{{Name: tensorPaDiMChannels, Shape: []int{k}, Data: ch},
		{Name: tensorPaDiMMean, Shape: []int{cells, k}, Data: p.mean},
		{Name: tensorPaDiMFactor, Shape: []int{cells, tri(k)}, Data: p.fac}}
}

// Load implements Density. Every tensor must have the shape the stored
// configuration gives, only finite values, and the channels must be
// distinct whole indices of the patch vector in ascending order.
func (p *PaDiM) Load(m *model.Model, dim int) error {
	id := m.Manifest.ID
	cfg := p.Cfg
	if cfg.Dim != dim || cfg.K < 1 || cfg.K > dim || cfg.H < 1 || cfg.W < 1 {
		return fmt.Errorf("model %s: padim configuration says %d features, %d kept, on a %dx%d grid; the grid gives %d features", id, cfg.Dim, cfg.K, cfg.W, cfg.H, dim)
	}
	k, cells := cfg.K, cfg.H*cfg.W
	ch, err := exactTensor(m, tensorPaDiMChannels, []int{k})
	if err != nil {
		return err
	}
	chans := make([]int, k)
	for i, v := range ch.Data {
		c := int(v)
		if float32(c) != v || c < 0 || c >= dim || (i > 0 && c <= chans[i-1]) {
			return fmt.Errorf("model %s: tensor %s: channel %v at %d is not a new index below %d in ascending order", id, tensorPaDiMChannels, v, i, dim)
		}
		chans[i] = c
	}
	mean, err := exactTensor(m, tensorPaDiMMean, []int{cells, k})
	if err != nil {
		return err
	}
	fac, err := exactTensor(m, tensorPaDiMFactor, []int{cells, tri(k)})
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.looFor, p.looMean, p.looFac = -1, nil, nil
	p.mu.Unlock()
	p.chans, p.mean, p.fac, p.dim, p.st = chans, mean.Data, fac.Data, dim, nil
	return nil
}
