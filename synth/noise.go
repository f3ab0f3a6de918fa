package synth

import (
	"math"
	"math/rand/v2"
)

// newRNG returns the generator for one stream of one seed. Streams keep the
// draws of different purposes (images of a data set, a defect on an image)
// independent, so adding draws to one does not change the others.
func newRNG(seed int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), mix(stream)))
}

// mix is splitmix64's finaliser: nearby inputs give unrelated outputs.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// deriveSeed gives the seed of item i of a group, from a data set's seed.
func deriveSeed(seed int64, group string, i int) int64 {
	h := uint64(seed)
	for _, c := range []byte(group) {
		h = mix(h ^ uint64(c))
	}
	return int64(mix(h ^ uint64(i)<<1))
}

// noise2 is smooth value noise on a periodic n x n grid of random values;
// coordinates are in grid cells.
type noise2 struct {
	n int
	v []float32
}

func newNoise2(rng *rand.Rand, n int) *noise2 {
	g := &noise2{n: n, v: make([]float32, n*n)}
	for i := range g.v {
		g.v[i] = float32(rng.Float64()*2 - 1)
	}
	return g
}

// at returns a value in [-1, 1].
func (g *noise2) at(x, y float64) float32 {
	fx, fy := math.Floor(x), math.Floor(y)
	tx, ty := float32(smooth(x-fx)), float32(smooth(y-fy))
	x0, y0 := wrap(int(fx), g.n), wrap(int(fy), g.n)
	x1, y1 := wrap(x0+1, g.n), wrap(y0+1, g.n)
	a := g.v[y0*g.n+x0] + tx*(g.v[y0*g.n+x1]-g.v[y0*g.n+x0])
	b := g.v[y1*g.n+x0] + tx*(g.v[y1*g.n+x1]-g.v[y1*g.n+x0])
	return a + ty*(b-a)
}

// noise1 is 1-D periodic value noise, for radial and angular profiles.
type noise1 struct{ v []float32 }

func newNoise1(rng *rand.Rand, n int) *noise1 {
	g := &noise1{v: make([]float32, n)}
	for i := range g.v {
		g.v[i] = float32(rng.Float64()*2 - 1)
	}
	return g
}

func (g *noise1) at(x float64) float32 {
	f := math.Floor(x)
	t := float32(smooth(x - f))
	i := wrap(int(f), len(g.v))
	j := wrap(i+1, len(g.v))
	return g.v[i] + t*(g.v[j]-g.v[i])
}

func smooth(t float64) float64 { return t * t * (3 - 2*t) }

func wrap(i, n int) int {
	i %= n
	if i < 0 {
		i += n
	}
	return i
}

func clamp01(v float64) float64 { return min(max(v, 0), 1) }

// angleDiff is the absolute difference of two angles, in [0, pi].
func angleDiff(a, b float64) float64 {
	d := math.Mod(math.Abs(a-b), 2*math.Pi)
	if d > math.Pi {
		d = 2*math.Pi - d
	}
	return d
}
