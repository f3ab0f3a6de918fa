package synth

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"gocv.io/x/gocv"
)

// Kind is a class of defect; its string is the folder name in a data set.
type Kind string

// The defect kinds, each sized to cover about 0.3-3% of the part's area and
// drawn at least 2 pixels wide at 224 pixels.
const (
	Scratch Kind = "scratch" // thin curved groove: dark furrow, bright lip
	Stain   Kind = "stain"   // dark brownish blob with a mottled inside
	Crack   Kind = "crack"   // jagged dark line with branches
	Hole    Kind = "hole"    // missing material: chipped rim or punched hole
)

// Kinds lists every kind, in a fixed order.
var Kinds = []Kind{Scratch, Stain, Crack, Hole}

// Defect draws a defect of the given kind on a copy of good, a part drawn by
// Good, and returns the image and its ground-truth mask (8UC1, 255 on the
// defect's pixels, 0 elsewhere). The defect is placed at random on the
// part's material (never over the bore, bolt holes or belt), found from the
// image itself, so any Good image works. Deterministic for good and seed.
func Defect(good gocv.Mat, kind Kind, seed int64) (img, mask gocv.Mat, err error) {
	if !slices.Contains(Kinds, kind) {
		return gocv.Mat{}, gocv.Mat{}, fmt.Errorf("synth: defect: unknown kind %q (want one of %v)", kind, Kinds)
	}
	if good.Empty() || good.Type() != gocv.MatTypeCV8UC3 || good.Rows() < MinSize || good.Cols() < MinSize {
		return gocv.Mat{}, gocv.Mat{}, fmt.Errorf("synth: defect: want an 8UC3 image of at least %dx%d, got %dx%d type %v",
			MinSize, MinSize, good.Cols(), good.Rows(), good.Type())
	}
	c := good.Clone() // continuous whatever good is
	defer c.Close()
	src, err := c.DataPtrUint8()
	if err != nil {
		return gocv.Mat{}, gocv.Mat{}, fmt.Errorf("synth: defect: %w", err)
	}
	s, err := analyse(src, good.Rows(), good.Cols())
	if err != nil {
		return gocv.Mat{}, gocv.Mat{}, fmt.Errorf("synth: defect: %w", err)
	}
	rng := newRNG(seed, 2+uint64(slices.Index(Kinds, kind)))
	px := make([]float32, len(src))
	for i, v := range src {
		px[i] = float32(v)
	}
	var m []bool
	switch kind {
	case Scratch:
		m, err = drawScratch(s, px, rng)
	case Stain:
		m, err = drawStain(s, px, rng)
	case Crack:
		m, err = drawCrack(s, px, rng)
	case Hole:
		m, err = drawHole(s, px, rng)
	}
	if err != nil {
		return gocv.Mat{}, gocv.Mat{}, fmt.Errorf("synth: defect %s: %w", kind, err)
	}
	img = matFromBGR(px, s.h, s.w)
	mask = gocv.NewMatWithSize(s.h, s.w, gocv.MatTypeCV8U)
	mb, err := mask.DataPtrUint8()
	if err != nil {
		img.Close()
		mask.Close()
		return gocv.Mat{}, gocv.Mat{}, fmt.Errorf("synth: defect: %w", err)
	}
	for i, on := range m {
		if on {
			mb[i] = 255
		}
	}
	return img, mask, nil
}

// scene is what Defect learns about a part from its image.
type scene struct {
	h, w      int
	material  []bool // pixels of the part's material
	cx, cy, r float64
	bgMean    float64 // belt level and spread, for filling missing material
	bgStd     float64
}

// analyse separates material from belt with a threshold above the belt
// level measured on the image border, and finds the disc from the
// extremes of the material.
func analyse(px []byte, h, w int) (*scene, error) {
	gray := func(i int) float64 {
		return 0.114*float64(px[3*i]) + 0.587*float64(px[3*i+1]) + 0.299*float64(px[3*i+2])
	}
	var border []float64
	for x := range w {
		border = append(border, gray(x), gray((h-1)*w+x))
	}
	for y := range h {
		border = append(border, gray(y*w), gray(y*w+w-1))
	}
	slices.Sort(border)
	med := border[len(border)/2]
	var mean, sq float64
	for _, v := range border {
		mean += v
		sq += v * v
	}
	mean /= float64(len(border))
	std := math.Sqrt(max(sq/float64(len(border))-mean*mean, 0))

	thr := med + 35
	s := &scene{h: h, w: w, material: make([]bool, h*w), bgMean: mean, bgStd: std}
	minX, minY, maxX, maxY := w, h, -1, -1
	n := 0
	for y := range h {
		for x := range w {
			if gray(y*w+x) > thr {
				s.material[y*w+x] = true
				minX, maxX = min(minX, x), max(maxX, x)
				minY, maxY = min(minY, y), max(maxY, y)
				n++
			}
		}
	}
	if n < h*w/50 {
		return nil, errors.New("no part found in the image (is it an image from Good?)")
	}
	s.cx, s.cy = float64(minX+maxX)/2, float64(minY+maxY)/2
	s.r = (float64(maxX-minX) + float64(maxY-minY) + 2) / 4
	return s, nil
}

// onMaterial reports whether every pixel with alpha above cut, grown by
// margin pixels, lies on material.
func (s *scene) onMaterial(alpha []float32, cut float32, margin int) bool {
	for i, a := range alpha {
		if a <= cut {
			continue
		}
		x, y := i%s.w, i/s.w
		for dy := -margin; dy <= margin; dy++ {
			for dx := -margin; dx <= margin; dx++ {
				xx, yy := x+dx, y+dy
				if xx < 0 || yy < 0 || xx >= s.w || yy >= s.h || !s.material[yy*s.w+xx] {
					return false
				}
			}
		}
	}
	return true
}

// pointOnFace picks a random point on the flat face between the hub and
// the outer chamfer.
func (s *scene) pointOnFace(rng *rand.Rand, uMin, uMax float64) (x, y float64) {
	u := uMin + rng.Float64()*(uMax-uMin)
	a := rng.Float64() * 2 * math.Pi
	return s.cx + u*s.r*math.Cos(a), s.cy + u*s.r*math.Sin(a)
}

// stroke is a polyline with a width at each vertex.
type stroke struct {
	pts    [][2]float64
	widths []float64
}

// alpha renders strokes as anti-aliased coverage in [0, 1].
func (s *scene) alpha(strokes []stroke) []float32 {
	out := make([]float32, s.h*s.w)
	for _, st := range strokes {
		for k := 0; k+1 < len(st.pts); k++ {
			a, b := st.pts[k], st.pts[k+1]
			wa, wb := st.widths[k], st.widths[k+1]
			pad := max(wa, wb)/2 + 2
			x0 := max(int(math.Floor(min(a[0], b[0])-pad)), 0)
			x1 := min(int(math.Ceil(max(a[0], b[0])+pad)), s.w-1)
			y0 := max(int(math.Floor(min(a[1], b[1])-pad)), 0)
			y1 := min(int(math.Ceil(max(a[1], b[1])+pad)), s.h-1)
			vx, vy := b[0]-a[0], b[1]-a[1]
			l2 := vx*vx + vy*vy
			for y := y0; y <= y1; y++ {
				for x := x0; x <= x1; x++ {
					t := 0.0
					if l2 > 0 {
						t = clamp01(((float64(x)-a[0])*vx + (float64(y)-a[1])*vy) / l2)
					}
					d := math.Hypot(float64(x)-a[0]-t*vx, float64(y)-a[1]-t*vy)
					wdt := wa + t*(wb-wa)
					if c := float32(clamp01(wdt/2 - d + 0.5)); c > out[y*s.w+x] {
						out[y*s.w+x] = c
					}
				}
			}
		}
	}
	return out
}

const attempts = 200

var errNoRoom = errors.New("no placement on the part's material found")

// lineWidth is the stroke width for thin defects: at least 2 pixels, and
// proportional to the image so they look alike at every size.
func lineWidth(s *scene, frac float64) float64 { return math.Max(2, frac*float64(min(s.w, s.h))) }

func drawScratch(s *scene, px []float32, rng *rand.Rand) ([]bool, error) {
	w := lineWidth(s, 1.0/100)
	for range attempts {
		x0, y0 := s.pointOnFace(rng, 0.32, 0.85)
		length := (0.5 + rng.Float64()*0.3) * s.r
		dir := rng.Float64() * 2 * math.Pi
		bend := (rng.Float64()*2 - 1) * 0.35 * length
		x2, y2 := x0+length*math.Cos(dir), y0+length*math.Sin(dir)
		mx, my := (x0+x2)/2-bend*math.Sin(dir), (y0+y2)/2+bend*math.Cos(dir)
		var st stroke
		const n = 40
		for k := range n + 1 {
			t := float64(k) / n
			// Quadratic Bezier; thinner at the ends, as a tool slips in and out.
			x := (1-t)*(1-t)*x0 + 2*(1-t)*t*mx + t*t*x2
			y := (1-t)*(1-t)*y0 + 2*(1-t)*t*my + t*t*y2
			st.pts = append(st.pts, [2]float64{x, y})
			st.widths = append(st.widths, w*(0.55+0.45*math.Sin(math.Pi*t)))
		}
		// A scratch is a groove: a dark furrow with a bright lip of pushed-up
		// metal along one side catching the light.
		var lip stroke
		side := 1.0
		if rng.IntN(2) == 0 {
			side = -1
		}
		for k, p := range st.pts {
			q := st.pts[min(k+1, len(st.pts)-1)]
			o := st.pts[max(k-1, 0)]
			tx, ty := q[0]-o[0], q[1]-o[1]
			l := math.Hypot(tx, ty)
			off := side * 0.9 * st.widths[k]
			lip.pts = append(lip.pts, [2]float64{p[0] - ty/l*off, p[1] + tx/l*off})
			lip.widths = append(lip.widths, 0.8*st.widths[k])
		}
		a := s.alpha([]stroke{st})
		b := s.alpha([]stroke{lip})
		if !s.onMaterial(a, 0, 1) || !s.onMaterial(b, 0, 1) {
			continue
		}
		for i := range a {
			al, bl := a[i], b[i]*(1-a[i])
			if al == 0 && bl == 0 {
				continue
			}
			for c := range 3 {
				v := px[3*i+c] * (1 - 0.6*al)
				px[3*i+c] = v + bl*(252-v)*0.85
			}
			a[i] = max(al, b[i])
		}
		return threshold(a, 0.25), nil
	}
	return nil, errNoRoom
}

func drawCrack(s *scene, px []float32, rng *rand.Rand) ([]bool, error) {
	w := lineWidth(s, 1.0/150)
	step := s.r / 30
	walk := func(x, y, dir float64, steps int, w0 float64) stroke {
		var st stroke
		for k := 0; k <= steps; k++ {
			st.pts = append(st.pts, [2]float64{x, y})
			st.widths = append(st.widths, w0*(1-0.6*float64(k)/float64(steps)))
			dir += (rng.Float64()*2 - 1) * 0.6
			x, y = x+step*math.Cos(dir), y+step*math.Sin(dir)
		}
		return st
	}
	for range attempts {
		x, y := s.pointOnFace(rng, 0.35, 0.8)
		dir := rng.Float64() * 2 * math.Pi
		main := walk(x, y, dir, 16+rng.IntN(8), w)
		strokes := []stroke{main}
		// A crack runs both ways from where it started.
		strokes = append(strokes, walk(x, y, dir+math.Pi, 4+rng.IntN(5), w))
		for range 1 + rng.IntN(2) {
			k := 2 + rng.IntN(len(main.pts)-4)
			p := main.pts[k]
			side := 1.0
			if rng.IntN(2) == 0 {
				side = -1
			}
			strokes = append(strokes, walk(p[0], p[1], dir+side*(0.6+rng.Float64()*0.5), 4+rng.IntN(5), w*0.7))
		}
		a := s.alpha(strokes)
		if !s.onMaterial(a, 0, 1) {
			continue
		}
		for i, al := range a {
			for c := range 3 {
				px[3*i+c] *= 1 - 0.82*al
			}
		}
		return threshold(a, 0.25), nil
	}
	return nil, errNoRoom
}

// blob renders an irregular disc: radius base*(1 + wobble*noise(angle)),
// feathered over feather pixels.
func (s *scene) blob(x0, y0, base, wobble, feather float64, rng *rand.Rand) []float32 {
	edge := newNoise1(rng, 9)
	out := make([]float32, s.h*s.w)
	reach := base*(1+wobble) + feather + 1
	for y := max(int(y0-reach), 0); y <= min(int(y0+reach), s.h-1); y++ {
		for x := max(int(x0-reach), 0); x <= min(int(x0+reach), s.w-1); x++ {
			dx, dy := float64(x)-x0, float64(y)-y0
			a := math.Atan2(dy, dx)
			rad := base * (1 + wobble*float64(edge.at((a+math.Pi)/(2*math.Pi)*9)))
			out[y*s.w+x] = float32(clamp01((rad - math.Hypot(dx, dy)) / feather))
		}
	}
	return out
}

func drawStain(s *scene, px []float32, rng *rand.Rand) ([]bool, error) {
	for range attempts {
		x0, y0 := s.pointOnFace(rng, 0.38, 0.8)
		base := (0.12 + rng.Float64()*0.05) * s.r
		a := s.blob(x0, y0, base, 0.3, math.Max(2, base*0.35), rng)
		if !s.onMaterial(a, 0, 1) {
			continue
		}
		mottle := newNoise2(rng, 16)
		cell := base / 3
		for i, al := range a {
			if al == 0 {
				continue
			}
			x, y := float64(i%s.w), float64(i/s.w)
			k := al * (0.75 + 0.25*mottle.at(x/cell, y/cell))
			// Rust-brown: blue absorbed most.
			px[3*i] *= 1 - 0.68*k
			px[3*i+1] *= 1 - 0.55*k
			px[3*i+2] *= 1 - 0.42*k
		}
		return threshold(a, 0.3), nil
	}
	return nil, errNoRoom
}

func drawHole(s *scene, px []float32, rng *rand.Rand) ([]bool, error) {
	chip := rng.IntN(2) == 0
	fill := newNoise2(rng, 16)
	for range attempts {
		var a []float32
		if chip {
			// A bite out of the rim: a blob centred just outside the edge.
			ang := rng.Float64() * 2 * math.Pi
			d := 1.02 * s.r
			base := (0.18 + rng.Float64()*0.07) * s.r
			a = s.blob(s.cx+d*math.Cos(ang), s.cy+d*math.Sin(ang), base, 0.25, 1, rng)
			// Only material can go missing; the belt around is unchanged.
			for i := range a {
				if !s.material[i] {
					a[i] = 0
				}
			}
		} else {
			x0, y0 := s.pointOnFace(rng, 0.38, 0.8)
			base := (0.10 + rng.Float64()*0.04) * s.r
			a = s.blob(x0, y0, base, 0.25, 1, rng)
			if !s.onMaterial(a, 0, 2) {
				continue
			}
		}
		removed := threshold(a, 0)
		if count(removed) < 20 {
			continue
		}
		// The fracture edge: a dark band of broken material around the gap.
		edge := s.ring(removed, max(2, int(math.Round(lineWidth(s, 1.0/200)))))
		for i, al := range a {
			if edge[i] && s.material[i] {
				for c := range 3 {
					px[3*i+c] *= 0.6
				}
			}
			if al == 0 {
				continue
			}
			x, y := float64(i%s.w), float64(i/s.w)
			// Belt seen through the gap, in the part's shadow.
			bgv := float32((s.bgMean + s.bgStd*float64(fill.at(x/8, y/8))) * 0.8)
			for c := range 3 {
				px[3*i+c] = px[3*i+c]*(1-al) + bgv*al
			}
		}
		m := make([]bool, len(removed))
		for i := range m {
			m[i] = (removed[i] || edge[i]) && s.material[i]
		}
		return m, nil
	}
	return nil, errNoRoom
}

// ring marks pixels within width of m that are not in m.
func (s *scene) ring(m []bool, width int) []bool {
	out := make([]bool, len(m))
	for i, on := range m {
		if !on {
			continue
		}
		x, y := i%s.w, i/s.w
		for dy := -width; dy <= width; dy++ {
			for dx := -width; dx <= width; dx++ {
				xx, yy := x+dx, y+dy
				if xx >= 0 && yy >= 0 && xx < s.w && yy < s.h && !m[yy*s.w+xx] {
					out[yy*s.w+xx] = true
				}
			}
		}
	}
	return out
}

func threshold(a []float32, cut float32) []bool {
	m := make([]bool, len(a))
	for i, v := range a {
		m[i] = v > cut
	}
	return m
}

func count(m []bool) int {
	n := 0
	for _, on := range m {
		if on {
			n++
		}
	}
	return n
}
