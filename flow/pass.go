package flow

// workspace is per-call scratch, pooled so that concurrent scoring neither
// shares buffers nor allocates megabytes per call.
type workspace struct {
	chunk []float32
	off   int
	need  int
}

// take returns k floats with arbitrary contents. When the chunk is exhausted
// it allocates, and put grows the chunk so that the next call of the same
// size does not.
func (w *workspace) take(k int) []float32 {
	w.need += k
	if w.off+k > len(w.chunk) {
		return make([]float32, k)
	}
	s := w.chunk[w.off : w.off+k : w.off+k]
	w.off += k
	return s
}

func (f *Flow) getWS() *workspace {
	w, _ := f.pool.Get().(*workspace)
	if w == nil {
		w = &workspace{}
	}
	w.off, w.need = 0, 0
	return w
}

func (f *Flow) putWS(w *workspace) {
	if w.need > len(w.chunk) {
		w.chunk = make([]float32, w.need)
	}
	f.pool.Put(w)
}

// trace is what one block's backward pass needs from its forward pass.
type trace struct {
	xp, out []float32 // permuted input, block output (n x Dim)
	c2, c1  mlpCache  // subnet activations; the last holds raw (s, t)
	e2, e1  []float32 // exp(c(s2)) (n x n1), exp(c(s1)) (n x n2)
}

func (f *Flow) newCache(w *workspace, m *mlp, n int) mlpCache {
	c := mlpCache{acts: make([][]float32, len(m.layers))}
	for l, L := range m.layers {
		c.acts[l] = w.take(n * L.out)
	}
	return c
}

func (f *Flow) newTrace(w *workspace, bl *block, n int, out []float32) trace {
	D := f.cfg.Dim
	if out == nil {
		out = w.take(n * D)
	}
	return trace{
		xp: w.take(n * D), out: out,
		c2: f.newCache(w, &bl.st2, n), c1: f.newCache(w, &bl.st1, n),
		e2: w.take(n * f.n1), e1: w.take(n * f.n2),
	}
}

// forward maps x to z. With keep, every block's trace is returned for
// backprop; otherwise buffers are reused between blocks.
func (f *Flow) forward(w *workspace, x, c []float32, n int, keep bool) (z, logdet []float32, traces []trace) {
	D := f.cfg.Dim
	z = make([]float32, n*D)
	ld := make([]float64, n)
	var shared [2]trace
	if !keep {
		// Blocks share subnet shapes, so one pair of traces serves all;
		// outputs alternate so a block never overwrites its input.
		shared[0] = f.newTrace(w, &f.blocks[0], n, nil)
		shared[1] = shared[0]
		shared[1].out = w.take(n * D)
	} else {
		traces = make([]trace, len(f.blocks))
	}
	in := x
	for b := range f.blocks {
		bl := &f.blocks[b]
		var t *trace
		if keep {
			var out []float32
			if b == len(f.blocks)-1 {
				out = z
			}
			traces[b] = f.newTrace(w, bl, n, out)
			t = &traces[b]
		} else {
			t = &shared[b%2]
			if b == len(f.blocks)-1 {
				t.out = z
			}
		}
		f.blockForward(bl, in, c, t, n, ld)
		in = t.out
	}
	logdet = make([]float32, n)
	for i, v := range ld {
		logdet[i] = float32(v)
	}
	return z, logdet, traces
}

func (f *Flow) blockForward(bl *block, in, c []float32, t *trace, n int, ld []float64) {
	D, n1, n2, a := f.cfg.Dim, f.n1, f.n2, f.alpha
	xp, out := t.xp, t.out
	for i := 0; i < n; i++ {
		src, dst := in[i*D:(i+1)*D], xp[i*D:(i+1)*D]
		for j, p := range bl.perm {
			dst[j] = src[p]
		}
	}
	o2 := bl.st2.forward(xp[n1:], D, c, n, &t.c2)
	for i := 0; i < n; i++ {
		s, tt := o2[i*2*n1:i*2*n1+n1], o2[i*2*n1+n1:(i+1)*2*n1]
		x1, y1, e2 := xp[i*D:i*D+n1], out[i*D:i*D+n1], t.e2[i*n1:(i+1)*n1]
		var sum float64
		for j := range s {
			c := clamp(s[j], a)
			e := exp32(c)
			e2[j] = e
			y1[j] = x1[j]*e + tt[j]
			sum += float64(c)
		}
		ld[i] += sum
	}
	o1 := bl.st1.forward(out, D, c, n, &t.c1)
	for i := 0; i < n; i++ {
		s, tt := o1[i*2*n2:i*2*n2+n2], o1[i*2*n2+n2:(i+1)*2*n2]
		x2, y2, e1 := xp[i*D+n1:(i+1)*D], out[i*D+n1:(i+1)*D], t.e1[i*n2:(i+1)*n2]
		var sum float64
		for j := range s {
			c := clamp(s[j], a)
			e := exp32(c)
			e1[j] = e
			y2[j] = x2[j]*e + tt[j]
			sum += float64(c)
		}
		ld[i] += sum
	}
}

// backward propagates dz (n x Dim) through all blocks and returns d/dx.
// gld is the derivative of the objective with respect to each row's
// log-determinant; grads selects parameter-gradient accumulation.
func (f *Flow) backward(w *workspace, traces []trace, c []float32, n int, dz []float32, gld float32, grads bool) []float32 {
	D := f.cfg.Dim
	widest := 0
	for b := range f.blocks {
		widest = max(widest, f.blocks[b].st1.widest(), f.blocks[b].st2.widest())
	}
	scratch := w.take(2 * n * widest)
	dXp := w.take(n * D)
	dO2 := w.take(n * 2 * f.n1)
	dO1 := w.take(n * 2 * f.n2)
	bufs := [2][]float32{w.take(n * D), w.take(n * D)}
	cur := dz
	for b := len(f.blocks) - 1; b >= 0; b-- {
		dst := bufs[b%2] // never the buffer cur came from
		if b == 0 {
			dst = make([]float32, n*D)
		}
		f.blockBackward(&f.blocks[b], &traces[b], c, n, cur, dst, dXp, dO2, dO1, scratch, gld, grads)
		cur = dst
	}
	return cur
}

func (f *Flow) blockBackward(bl *block, t *trace, c []float32, n int, dOut, dIn, dXp, dO2, dO1, scratch []float32, gld float32, grads bool) {
	D, n1, n2, a := f.cfg.Dim, f.n1, f.n2, f.alpha
	o1 := t.c1.acts[len(t.c1.acts)-1]
	for i := 0; i < n; i++ {
		copy(dXp[i*D:i*D+n1], dOut[i*D:i*D+n1])
		dy2, x2 := dOut[i*D+n1:(i+1)*D], t.xp[i*D+n1:(i+1)*D]
		e1, s1 := t.e1[i*n2:(i+1)*n2], o1[i*2*n2:i*2*n2+n2]
		ds, dt, dx2 := dO1[i*2*n2:i*2*n2+n2], dO1[i*2*n2+n2:(i+1)*2*n2], dXp[i*D+n1:(i+1)*D]
		for j := range dy2 {
			g := dy2[j] * e1[j]
			dx2[j] = g
			ds[j] = (g*x2[j] + gld) * dclamp(s1[j], a)
			dt[j] = dy2[j]
		}
	}
	bl.st1.backward(t.out, D, c, n, &t.c1, dO1, grads, dXp, D, scratch)
	o2 := t.c2.acts[len(t.c2.acts)-1]
	for i := 0; i < n; i++ {
		dy1, x1 := dXp[i*D:i*D+n1], t.xp[i*D:i*D+n1]
		e2, s2 := t.e2[i*n1:(i+1)*n1], o2[i*2*n1:i*2*n1+n1]
		ds, dt := dO2[i*2*n1:i*2*n1+n1], dO2[i*2*n1+n1:(i+1)*2*n1]
		for j := range dy1 {
			g := dy1[j] * e2[j]
			ds[j] = (g*x1[j] + gld) * dclamp(s2[j], a)
			dt[j] = dy1[j]
			dy1[j] = g
		}
	}
	bl.st2.backward(t.xp[n1:], D, c, n, &t.c2, dO2, grads, dXp[n1:], D, scratch)
	for i := 0; i < n; i++ {
		src, dst := dXp[i*D:(i+1)*D], dIn[i*D:(i+1)*D]
		for j, p := range bl.perm {
			dst[p] = src[j]
		}
	}
}

// Forward maps a batch to the latent space and returns each row's
// log|det J|. A conditional flow needs ForwardCond.
func (f *Flow) Forward(x []float32, n int) (z, logdet []float32) {
	return f.ForwardCond(x, nil, n)
}

// ForwardCond is Forward with one condition row (Config.Cond values) per
// row of x; c is nil for an unconditional flow.
func (f *Flow) ForwardCond(x, c []float32, n int) (z, logdet []float32) {
	f.checkBatch("Forward", x, n)
	f.checkCond("Forward", c, n)
	if n == 0 {
		return []float32{}, []float32{}
	}
	w := f.getWS()
	defer f.putWS(w)
	z, logdet, _ = f.forward(w, x, c, n, false)
	return z, logdet
}

// Inverse maps latent vectors back to feature space.
func (f *Flow) Inverse(z []float32, n int) []float32 { return f.InverseCond(z, nil, n) }

// InverseCond is Inverse under the conditions c (see ForwardCond).
func (f *Flow) InverseCond(z, c []float32, n int) []float32 {
	f.checkBatch("Inverse", z, n)
	f.checkCond("Inverse", c, n)
	if n == 0 {
		return []float32{}
	}
	w := f.getWS()
	defer f.putWS(w)
	D, n1, n2, a := f.cfg.Dim, f.n1, f.n2, f.alpha
	t := f.newTrace(w, &f.blocks[0], n, nil)
	cur := append([]float32(nil), z...)
	for b := len(f.blocks) - 1; b >= 0; b-- {
		bl := &f.blocks[b]
		xp := t.xp
		o1 := bl.st1.forward(cur, D, c, n, &t.c1)
		for i := 0; i < n; i++ {
			s, tt := o1[i*2*n2:i*2*n2+n2], o1[i*2*n2+n2:(i+1)*2*n2]
			y2, x2 := cur[i*D+n1:(i+1)*D], xp[i*D+n1:(i+1)*D]
			for j := range s {
				x2[j] = (y2[j] - tt[j]) * exp32(-clamp(s[j], a))
			}
		}
		o2 := bl.st2.forward(xp[n1:], D, c, n, &t.c2)
		for i := 0; i < n; i++ {
			s, tt := o2[i*2*n1:i*2*n1+n1], o2[i*2*n1+n1:(i+1)*2*n1]
			y1, x1 := cur[i*D:i*D+n1], xp[i*D:i*D+n1]
			for j := range s {
				x1[j] = (y1[j] - tt[j]) * exp32(-clamp(s[j], a))
			}
		}
		for i := 0; i < n; i++ {
			src, dst := xp[i*D:(i+1)*D], cur[i*D:(i+1)*D]
			for j, p := range bl.perm {
				dst[p] = src[j]
			}
		}
	}
	return cur
}

// nll is the training objective for one row: (0.5*||z||^2 - logdet) / Dim.
func (f *Flow) nll(z []float32, logdet float32) float64 {
	var ss float64
	for _, v := range z {
		ss += float64(v) * float64(v)
	}
	return (0.5*ss - float64(logdet)) / float64(f.cfg.Dim)
}

// Loss is the mean over the batch of (0.5*||z||^2 - log|det J|) / Dim, the
// negative log-likelihood per dimension up to the constant 0.5*log(2*pi).
func (f *Flow) Loss(x []float32, n int) float64 { return f.LossCond(x, nil, n) }

// LossCond is Loss under the conditions c (see ForwardCond).
func (f *Flow) LossCond(x, c []float32, n int) float64 {
	if n == 0 {
		return 0
	}
	z, ld := f.ForwardCond(x, c, n)
	D := f.cfg.Dim
	var sum float64
	for i := 0; i < n; i++ {
		sum += f.nll(z[i*D:(i+1)*D], ld[i])
	}
	return sum / float64(n)
}

// LossGrad returns Loss and adds its gradient to every Param's Grad.
func (f *Flow) LossGrad(x []float32, n int) float64 { return f.LossGradCond(x, nil, n) }

// LossGradCond is LossGrad under the conditions c (see ForwardCond).
func (f *Flow) LossGradCond(x, c []float32, n int) float64 {
	f.checkBatch("LossGrad", x, n)
	f.checkCond("LossGrad", c, n)
	if n == 0 {
		return 0
	}
	w := f.getWS()
	defer f.putWS(w)
	D := f.cfg.Dim
	z, ld, traces := f.forward(w, x, c, n, true)
	var sum float64
	for i := 0; i < n; i++ {
		sum += f.nll(z[i*D:(i+1)*D], ld[i])
	}
	scale := float32(1 / (float64(n) * float64(D)))
	dz := w.take(n * D)
	for i, v := range z {
		dz[i] = v * scale
	}
	f.backward(w, traces, c, n, dz, -scale, true)
	return sum / float64(n)
}

func (f *Flow) scores(z []float32, n int) []float32 {
	D := f.cfg.Dim
	s := make([]float32, n)
	for i := range s {
		var ss float64
		for _, v := range z[i*D : (i+1)*D] {
			ss += float64(v) * float64(v)
		}
		s[i] = float32(ss / float64(D))
	}
	return s
}

// Score is DifferNet's anomaly score of each row: the mean of z^2.
func (f *Flow) Score(x []float32, n int) []float32 {
	z, _ := f.Forward(x, n)
	return f.scores(z, n)
}

// ScoreGrad returns Score and, for each row, the gradient of its score with
// respect to that row (n x Dim), which localization projects onto the
// unpooled feature maps. Parameter gradients are left untouched.
func (f *Flow) ScoreGrad(x []float32, n int) (scores, dx []float32) {
	f.checkBatch("ScoreGrad", x, n)
	f.checkCond("ScoreGrad", nil, n)
	if n == 0 {
		return []float32{}, []float32{}
	}
	w := f.getWS()
	defer f.putWS(w)
	z, _, traces := f.forward(w, x, nil, n, true)
	scores = f.scores(z, n)
	dz := w.take(len(z))
	k := float32(2 / float64(f.cfg.Dim))
	for i, v := range z {
		dz[i] = k * v
	}
	return scores, f.backward(w, traces, nil, n, dz, 0, false)
}
