// Package local holds patch-level densities: instead of one pooled vector per
// image, every position of a backbone feature grid is a vector of its own,
// scored against what good parts look like there or anywhere. One small
// defect then changes a few positions a lot instead of the pooled vector a
// little, and the score map is the heatmap.
package local

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/inspectd/inspectd/features"
)

// GridConfig says how backbone maps become patch vectors.
type GridConfig struct {
	// Neighbourhood is the side of the square each position is averaged
	// over (PatchCore's local aggregation): context beyond one cell, so a
	// position is compared by its surroundings, not by one activation.
	// One window per tap, or one for all. A coarse tap's cell already
	// spans several of the finest grid's, so averaging it too blurs a
	// small defect over a region wider than the finest tap's window.
	Neighbourhood Windows `json:"neighbourhood"`
	// Dims are the channels kept per tap, by averaging runs of adjacent
	// channels (0 keeps them all): distances cost linearly in the width.
	Dims []int `json:"dims"`
}

// Validate names the first bad setting.
func (c GridConfig) Validate(taps int) error {
	if n := len(c.Neighbourhood); n != 1 && n != taps {
		return fmt.Errorf("local: %d neighbourhood windows for %d taps (give one, or one per tap)", n, taps)
	}
	for _, k := range c.Neighbourhood {
		if k < 1 || k > 15 || k%2 == 0 {
			return fmt.Errorf("local: neighbourhood %d must be odd, 1..15", k)
		}
	}
	if len(c.Dims) != taps {
		return fmt.Errorf("local: %d channel counts for %d taps", len(c.Dims), taps)
	}
	for _, d := range c.Dims {
		if d < 0 || d > 4096 {
			return fmt.Errorf("local: channel count %d outside 0..4096", d)
		}
	}
	return nil
}

// Windows are neighbourhood sides, one per tap or one for every tap.
type Windows []int

// UnmarshalJSON also reads a single number, as models written before
// windows were per tap store it.
func (w *Windows) UnmarshalJSON(b []byte) error {
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] != '[' && !bytes.Equal(b, []byte("null")) {
		var k int
		if err := json.Unmarshal(b, &k); err != nil {
			return fmt.Errorf("local: neighbourhood %s is neither a number nor a list: %w", b, err)
		}
		*w = Windows{k}
		return nil
	}
	var ks []int
	if err := json.Unmarshal(b, &ks); err != nil {
		return fmt.Errorf("local: neighbourhood: %w", err)
	}
	*w = ks
	return nil
}

// at is tap i's window; Validate has checked there is one.
func (w Windows) at(i int) int {
	if len(w) == 1 {
		return w[0]
	}
	return w[i]
}

// Grid turns one image's maps (one per tap, as features.Extractor.Maps
// returns them) into patch vectors on the finest tap's grid: each tap
// averaged over the neighbourhood, its channels reduced, resized to the
// finest grid and concatenated. The result is h*w rows of dim values,
// row-major over positions.
func Grid(maps []features.Map, cfg GridConfig) (rows []float32, h, w, dim int, err error) {
	if len(maps) == 0 {
		return nil, 0, 0, 0, errors.New("local: no maps")
	}
	if err := cfg.Validate(len(maps)); err != nil {
		return nil, 0, 0, 0, err
	}
	h, w = maps[0].H, maps[0].W
	for _, m := range maps {
		if m.H*m.W > h*w {
			h, w = m.H, m.W
		}
		if len(m.Data) != m.C*m.H*m.W || m.C <= 0 {
			return nil, 0, 0, 0, fmt.Errorf("local: map of tap %d holds %d values, not %dx%dx%d", m.Tap, len(m.Data), m.C, m.H, m.W)
		}
	}
	type part struct {
		c    int
		data []float32 // c x h x w on the common grid
	}
	parts := make([]part, len(maps))
	for i, m := range maps {
		d := boxMean(m.Data, m.C, m.H, m.W, cfg.Neighbourhood.at(i))
		c := m.C
		if k := cfg.Dims[i]; k > 0 && k < c {
			d, c = reduceChannels(d, c, m.H*m.W, k), k
		}
		if m.H != h || m.W != w {
			d = resize(d, c, m.H, m.W, h, w)
		}
		parts[i] = part{c, d}
		dim += c
	}
	hw := h * w
	rows = make([]float32, hw*dim)
	off := 0
	for _, p := range parts {
		for c := 0; c < p.c; c++ {
			src := p.data[c*hw : (c+1)*hw]
			for q, v := range src {
				rows[q*dim+off+c] = v
			}
		}
		off += p.c
	}
	return rows, h, w, dim, nil
}

// boxMean averages each channel over a k x k window; at the borders only
// the cells inside the map count, so edges are not pulled towards zero.
func boxMean(src []float32, c, h, w, k int) []float32 {
	if k == 1 {
		return src
	}
	r := k / 2
	out := make([]float32, len(src))
	tmp := make([]float32, h*w)
	for ch := 0; ch < c; ch++ {
		in := src[ch*h*w : (ch+1)*h*w]
		// rows then columns: two passes of 1-D means
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				var s float32
				n := 0
				for xx := max(0, x-r); xx <= min(w-1, x+r); xx++ {
					s += in[y*w+xx]
					n++
				}
				tmp[y*w+x] = s / float32(n)
			}
		}
		o := out[ch*h*w : (ch+1)*h*w]
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				var s float32
				n := 0
				for yy := max(0, y-r); yy <= min(h-1, y+r); yy++ {
					s += tmp[yy*w+x]
					n++
				}
				o[y*w+x] = s / float32(n)
			}
		}
	}
	return out
}

// reduceChannels averages c channels into k runs of adjacent channels, as
// PatchCore's adaptive average pooling over the feature axis does.
func reduceChannels(src []float32, c, hw, k int) []float32 {
	out := make([]float32, k*hw)
	for j := 0; j < k; j++ {
		lo, hi := j*c/k, ((j+1)*c+k-1)/k
		o := out[j*hw : (j+1)*hw]
		for ch := lo; ch < hi; ch++ {
			for p, v := range src[ch*hw : (ch+1)*hw] {
				o[p] += v
			}
		}
		inv := 1 / float32(hi-lo)
		for p := range o {
			o[p] *= inv
		}
	}
	return out
}

// resize scales each channel bilinearly from h x w to H x W, sampling at
// cell centres (the half-pixel convention of OpenCV and PyTorch's
// align_corners=false), which keeps a coarse cell over the fine cells it
// covers.
func resize(src []float32, c, h, w, H, W int) []float32 {
	out := make([]float32, c*H*W)
	type tap struct {
		i0, i1 int
		f      float32
	}
	axis := func(n, N int) []tap {
		t := make([]tap, N)
		s := float64(n) / float64(N)
		for i := range t {
			p := (float64(i)+0.5)*s - 0.5
			p = max(p, 0)
			i0 := min(int(p), n-1)
			i1 := min(i0+1, n-1)
			t[i] = tap{i0, i1, float32(p - float64(i0))}
		}
		return t
	}
	ys, xs := axis(h, H), axis(w, W)
	for ch := 0; ch < c; ch++ {
		in := src[ch*h*w : (ch+1)*h*w]
		o := out[ch*H*W : (ch+1)*H*W]
		for Y, ty := range ys {
			r0, r1 := in[ty.i0*w:(ty.i0+1)*w], in[ty.i1*w:(ty.i1+1)*w]
			for X, tx := range xs {
				a := r0[tx.i0] + (r0[tx.i1]-r0[tx.i0])*tx.f
				b := r1[tx.i0] + (r1[tx.i1]-r1[tx.i0])*tx.f
				o[Y*W+X] = a + (b-a)*ty.f
			}
		}
	}
	return out
}
