package flow

import "math"

// rng is splitmix64. The flow's permutations come from it, and a saved model
// stores weights but not permutations, so the generator must never change
// with the Go release: math/rand makes no such promise for Perm.
type rng struct{ s uint64 }

func newRNG(seed int64, stream uint64) *rng {
	r := &rng{s: uint64(seed)}
	r.s ^= stream * 0xd1b54a32d192ed03
	r.next() // decorrelate neighbouring seeds
	return r
}

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float64 is uniform in [0, 1).
func (r *rng) float64() float64 { return float64(r.next()>>11) / (1 << 53) }

// intn is uniform in [0, n) up to a bias of n/2^64, irrelevant here.
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// norm is a standard normal draw (Box-Muller).
func (r *rng) norm() float64 {
	u := 1 - r.float64() // (0, 1]
	v := r.float64()
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*v)
}

// perm returns a uniformly random permutation of 0..n-1 (Fisher-Yates).
func (r *rng) perm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := r.intn(i + 1)
		p[i], p[j] = p[j], p[i]
	}
	return p
}
