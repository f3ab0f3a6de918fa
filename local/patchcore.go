package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	ib "github.com/inspectd/inspectd/internal/blas"
	"github.com/inspectd/inspectd/model"
)

// PatchCore is a memory bank of good patches; a patch's score is its
// distance to the nearest one (Roth et al., "Towards total recall in
// industrial anomaly detection", 2022). A greedy coreset keeps the bank's
// size, and with it memory and scoring time, bounded whatever the number of
// good parts, while covering the patches that are far from the rest.
type PatchCore struct {
	Cfg   PatchCoreConfig
	bank  []float32 // m x dim
	norms []float32 // squared norms of the bank rows
	owner []int32   // image of each bank row; only after Fit
	m     int
	dim   int
	ix    *nnIndex
}

// PatchCoreConfig is stored in the model.
type PatchCoreConfig struct {
	// MaxBank bounds the bank's rows; above it a greedy coreset picks them.
	MaxBank int `json:"max_bank"`
	// ProjDim is the width of the random projection the coreset's
	// distances are computed in (PatchCore's speed-up; 0: full width).
	ProjDim int   `json:"proj_dim"`
	Seed    int64 `json:"seed"`
	Dim     int   `json:"dim,omitempty"`
	Rows    int   `json:"rows,omitempty"`
	// Radius is how close every good patch seen at calibration lies to the
	// bank (the coreset's covering radius): a confirmed-good patch farther
	// than that is new to the bank, one nearer is already covered.
	Radius float64 `json:"radius,omitempty"`
	// Added counts rows taken from confirmed-good parts after calibration.
	Added int `json:"added,omitempty"`
}

// MaxBankRows bounds a stored bank: 2^22 rows of width up to 4096 would
// already be 64 GB, so a model asking for more is refused.
const MaxBankRows = 1 << 22

// Method name of PatchCore in model files.
const MethodPatchCore = "patchcore"

const tensorBank = "patchcore.bank"

func init() {
	Register(MethodPatchCore, func(raw json.RawMessage) (Density, error) {
		p := &PatchCore{Cfg: PatchCoreConfig{MaxBank: 16384, ProjDim: 128, Seed: 1}}
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &p.Cfg); err != nil {
				return nil, fmt.Errorf("patchcore configuration: %w", err)
			}
		}
		if p.Cfg.MaxBank < 1 || p.Cfg.MaxBank > MaxBankRows || p.Cfg.ProjDim < 0 || p.Cfg.ProjDim > 4096 ||
			p.Cfg.Dim < 0 || p.Cfg.Dim > 1<<16 || p.Cfg.Rows < 0 || p.Cfg.Rows > MaxBankRows ||
			p.Cfg.Added < 0 || p.Cfg.Added > MaxBankRows || !(p.Cfg.Radius >= 0) || math.IsInf(p.Cfg.Radius, 0) {
			return nil, fmt.Errorf("patchcore configuration out of bounds: %+v", p.Cfg)
		}
		return p, nil
	})
}

// Config implements Density.
func (p *PatchCore) Config() json.RawMessage {
	c := p.Cfg
	c.Dim, c.Rows = p.dim, p.m
	b, _ := json.Marshal(c)
	return b
}

// Fit implements Density.
func (p *PatchCore) Fit(ctx context.Context, x []float32, n, dim int, owner []int32) error {
	if n < 1 || dim < 1 || len(x) != n*dim || len(owner) != n {
		return fmt.Errorf("patchcore: %d values and %d owners for %d rows of %d", len(x), len(owner), n, dim)
	}
	idx, radius, err := coreset(ctx, x, n, dim, p.Cfg.MaxBank, p.Cfg.ProjDim, p.Cfg.Seed)
	if err != nil {
		return err
	}
	p.Cfg.Radius, p.Cfg.Added = radius, 0
	p.dim, p.m = dim, len(idx)
	p.bank = make([]float32, p.m*dim)
	p.owner = make([]int32, p.m)
	for i, r := range idx {
		copy(p.bank[i*dim:(i+1)*dim], x[r*dim:(r+1)*dim])
		p.owner[i] = owner[r]
	}
	p.norms = rowNorms(p.bank, p.m, dim)
	p.ix, err = newNNIndex(ctx, p.bank, p.norms, p.m, dim, p.Cfg.Seed)
	return err
}

// Tensors implements Density.
func (p *PatchCore) Tensors() []model.Tensor {
	return []model.Tensor{{Name: tensorBank, Shape: []int{p.m, p.dim}, Data: p.bank}}
}

// Load implements Density.
func (p *PatchCore) Load(m *model.Model, dim int) error {
	t, err := m.Tensor(tensorBank)
	if err != nil {
		return err
	}
	if len(t.Shape) != 2 || t.Shape[1] != dim || t.Shape[0] < 1 || t.Shape[0] > MaxBankRows || len(t.Data) != t.Shape[0]*dim {
		return fmt.Errorf("model %s: tensor %s has shape %v; want [rows, %d] with 1..%d rows", m.Manifest.ID, tensorBank, t.Shape, dim, MaxBankRows)
	}
	p.bank, p.m, p.dim, p.owner = t.Data, t.Shape[0], dim, nil
	for _, v := range p.bank {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("model %s: tensor %s holds a non-finite value", m.Manifest.ID, tensorBank)
		}
	}
	p.norms = rowNorms(p.bank, p.m, dim)
	// Building the index is bounded by the bank's size, already checked.
	ix, err := newNNIndex(context.Background(), p.bank, p.norms, p.m, dim, p.Cfg.Seed)
	if err != nil {
		return fmt.Errorf("model %s: indexing the bank: %w", m.Manifest.ID, err)
	}
	p.ix = ix
	return nil
}

// Score implements Density: the Euclidean distance of each row to its
// nearest bank row.
func (p *PatchCore) Score(ctx context.Context, x []float32, n int, exclude int32) ([]float32, error) {
	if p.m == 0 || p.ix == nil {
		return nil, errors.New("patchcore: bank is empty")
	}
	if len(x) != n*p.dim {
		return nil, fmt.Errorf("patchcore: %d values for %d rows of %d", len(x), n, p.dim)
	}
	var owner []int32
	if exclude >= 0 {
		if p.owner == nil {
			return nil, errors.New("patchcore: leave-one-out needs the bank's owners (only after Fit)")
		}
		owner = p.owner
	}
	best, err := p.ix.nearest(ctx, x, n, owner, exclude)
	if err != nil {
		return nil, err
	}
	for i, v := range best {
		best[i] = float32(math.Sqrt(float64(max(v, 0))))
	}
	return best, nil
}

func rowNorms(x []float32, n, dim int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = sqNorm(x[i*dim : (i+1)*dim])
	}
	return out
}

// coreset picks at most k of the n rows by greedy k-centre selection: each
// step takes the row farthest from those already taken, so rare patches
// (a part's edge, a marking) stay covered while near-duplicates go.
// Distances are measured in a random projection to proj dimensions.
//
// radius is the largest distance of a row to the rows taken (0 when every
// row is taken), in the projection's units, which a random projection
// scaled by 1/sqrt(proj) keeps close to the full space's.
func coreset(ctx context.Context, x []float32, n, dim, k, proj int, seed int64) (idx []int, radius float64, err error) {
	if n <= k {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx, 0, nil
	}
	ib.Use()
	z, zd := x, dim
	if proj > 0 && proj < dim {
		rng := rand.New(rand.NewPCG(uint64(seed), 0xc0de))
		r := make([]float32, dim*proj)
		s := float32(1 / math.Sqrt(float64(proj)))
		for i := range r {
			r[i] = float32(rng.NormFloat64()) * s
		}
		z = make([]float32, n*proj)
		blas32.Implementation().Sgemm(blas.NoTrans, blas.NoTrans, n, proj, dim, 1, x, dim, r, proj, 0, z, proj)
		zd = proj
	}
	norms := rowNorms(z, n, zd)
	minD := make([]float32, n)
	for i := range minD {
		minD[i] = float32(math.Inf(1))
	}
	dots := make([]float32, n)
	impl := blas32.Implementation()
	picked := make([]int, 0, k)
	cur := rand.New(rand.NewPCG(uint64(seed), 0xc0de)).IntN(n)
	for len(picked) < k {
		if len(picked)%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, 0, err
			}
		}
		picked = append(picked, cur)
		impl.Sgemv(blas.NoTrans, n, zd, 1, z, zd, z[cur*zd:(cur+1)*zd], 1, 0, dots, 1)
		far, farD := 0, float32(-1)
		for i := range minD {
			if d := norms[i] + norms[cur] - 2*dots[i]; d < minD[i] {
				minD[i] = d
			}
			if minD[i] > farD {
				far, farD = i, minD[i]
			}
		}
		cur = far
		radius = math.Sqrt(float64(max(farD, 0)))
	}
	return picked, radius, nil
}

// MaxExtend bounds the rows Extend may add beyond the calibrated bank, as a
// share of MaxBank: scoring time grows with the bank, and a line that keeps
// confirming new kinds of good parts needs a recalibration, not an ever
// larger bank.
const MaxExtend = 1.0

// Extend implements Extender: a greedy cover of the confirmed-good rows at
// the bank's covering radius joins the bank, so the bank covers the part as
// closely as it covers the calibration parts (the coreset's promise), and
// no more rows than that. It refuses, changing nothing, when the bank would
// grow beyond MaxExtend x MaxBank added rows.
func (p *PatchCore) Extend(ctx context.Context, x []float32, n int) (int, error) {
	d, err := p.Score(ctx, x, n, -1)
	if err != nil {
		return 0, err
	}
	cover := p.Cfg.Radius
	var add []int
	for {
		far, farD := -1, float32(cover)
		for i, v := range d {
			if v > farD {
				far, farD = i, v
			}
		}
		if far < 0 {
			break
		}
		add = append(add, far)
		row := x[far*p.dim : (far+1)*p.dim]
		for i := range d {
			if d[i] <= float32(cover) {
				continue
			}
			var s float32
			for j, v := range x[i*p.dim : (i+1)*p.dim] {
				t := v - row[j]
				s += t * t
			}
			d[i] = min(d[i], float32(math.Sqrt(float64(s))))
		}
	}
	if limit := int(MaxExtend * float64(p.Cfg.MaxBank)); p.Cfg.Added+len(add) > limit {
		return 0, fmt.Errorf("patchcore: %d new patches would take the rows added since calibration to %d, beyond %d: recalibrate with these parts among the good ones", len(add), p.Cfg.Added+len(add), limit)
	}
	if p.m+len(add) > MaxBankRows {
		return 0, fmt.Errorf("patchcore: bank would exceed %d rows", MaxBankRows)
	}
	bank := make([]float32, 0, (p.m+len(add))*p.dim)
	bank = append(bank, p.bank...)
	for _, i := range add {
		bank = append(bank, x[i*p.dim:(i+1)*p.dim]...)
	}
	// A new slice, not an append in place: a loaded bank aliases the model
	// file's tensor, which the running inspector may still be reading.
	norms := rowNorms(bank, p.m+len(add), p.dim)
	ix, err := newNNIndex(ctx, bank, norms, p.m+len(add), p.dim, p.Cfg.Seed)
	if err != nil {
		return 0, err
	}
	p.bank, p.m, p.norms, p.ix = bank, p.m+len(add), norms, ix
	if p.owner != nil {
		for range add {
			p.owner = append(p.owner, -1)
		}
	}
	p.Cfg.Added += len(add)
	return len(add), nil
}
