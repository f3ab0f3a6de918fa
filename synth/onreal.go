package synth

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/imageops"
)

// SmallKind is a class of small defect drawn on a real image by
// DefectOnReal; its string is the folder name in a data set.
type SmallKind string

// The small defect kinds. Each covers under 1% of the image, so that a
// development set made from a user's own good images tests what one pooled
// vector per image cannot see.
const (
	Spot         SmallKind = "spot"    // dark or bright round blob with a soft edge
	SmallScratch SmallKind = "scratch" // thin curved line, dark or bright, fading at its ends
	SmallCrack   SmallKind = "crack"   // jagged thin dark line with one branch
	Dent         SmallKind = "dent"    // small shaded bump: light on one side, dark on the other
)

// SmallKinds lists every small kind, in a fixed order.
var SmallKinds = []SmallKind{Spot, SmallScratch, SmallCrack, Dent}

// MinRealSize is the smallest side DefectOnReal accepts: below it a defect
// under 1% of the image is a handful of pixels and the border margin leaves
// no room to place it.
const MinRealSize = 64

const (
	maxSmallArea  = 0.01 // mask area limit, as a fraction of the image
	realMargin    = 0.08 // defects stay this fraction of the side away from the border
	maskThreshold = 0.1  // a pixel is in the mask when its change is at least this fraction of the contrast
)

// DefectOnReal draws a small defect of the given kind on a copy of good, any
// 8UC3 or 8UC1 image at least MinRealSize on each side, and returns the
// image (8UC3) and its ground-truth mask (8UC1, 255 on the defect's pixels).
// Nothing is assumed about what the image shows: the defect is placed at
// random away from the border and its contrast follows the image's local
// statistics, so it is visible but not trivial on textured and plain
// surfaces alike. Pixels more than a few pixels from the mask are unchanged.
// Deterministic for (good, kind, seed).
func DefectOnReal(good gocv.Mat, kind SmallKind, seed int64) (img, mask gocv.Mat, err error) {
	idx := slices.Index(SmallKinds, kind)
	if idx < 0 {
		return gocv.Mat{}, gocv.Mat{}, fmt.Errorf("synth: defect on real image: unknown kind %q (want one of %v)", kind, SmallKinds)
	}
	if good.Empty() {
		return gocv.Mat{}, gocv.Mat{}, fmt.Errorf("synth: defect on real image: empty image")
	}
	h, w := good.Rows(), good.Cols()
	if h < MinRealSize || w < MinRealSize {
		return gocv.Mat{}, gocv.Mat{}, fmt.Errorf("synth: defect on real image: %dx%d is too small (want at least %dx%d)", w, h, MinRealSize, MinRealSize)
	}
	var bgr gocv.Mat
	switch good.Type() {
	case gocv.MatTypeCV8UC3:
		bgr = good.Clone() // continuous whatever good is
	case gocv.MatTypeCV8UC1:
		bgr = gocv.NewMat()
		gocv.CvtColor(good, &bgr, gocv.ColorGrayToBGR)
	default:
		return gocv.Mat{}, gocv.Mat{}, fmt.Errorf("synth: defect on real image: want an 8UC3 or 8UC1 image, got type %v", good.Type())
	}
	defer bgr.Close()
	src, err := bgr.DataPtrUint8()
	if err != nil {
		return gocv.Mat{}, gocv.Mat{}, fmt.Errorf("synth: defect on real image: %w", err)
	}
	grey := make([]float32, h*w)
	for i := range grey {
		grey[i] = 0.114*float32(src[3*i]) + 0.587*float32(src[3*i+1]) + 0.299*float32(src[3*i+2])
	}

	rng := newRNG(seed, 16+uint64(idx))
	side := float64(min(h, w))
	var st stamp
	switch kind {
	case Spot:
		st = newSpot(rng, side, float64(h*w))
	case SmallScratch:
		st = newScratch(rng, side)
	case SmallCrack:
		st = newCrack(rng, side)
	case Dent:
		st = newDent(rng, side, float64(h*w))
	}
	minContrast := 12 + 8*rng.Float64()
	stdFrac := 0.3 + 0.4*rng.Float64()
	sign := 1.0
	if rng.IntN(2) == 0 {
		sign = -1
	}
	if kind == SmallCrack {
		sign = -1 // cracks are open: they read dark under any lighting
	}
	fx, fy := rng.Float64(), rng.Float64()

	// The drawn shape is shrunk until its mask is under the area limit:
	// the soft edge and wobble make the exact area known only after drawing.
	var f *field
	for scale := 1.0; ; scale *= 0.85 {
		if scale < 0.05 {
			return gocv.Mat{}, gocv.Mat{}, fmt.Errorf("synth: defect on real image %s: cannot fit a defect under %.0f%% of a %dx%d image", kind, 100*maxSmallArea, w, h)
		}
		f = st.render(h, w, scale, fx, fy)
		if n := count(f.mask); n > 0 && float64(n) < maxSmallArea*float64(h*w) {
			break
		}
	}

	mean, std := localStats(grey, w, f.bbox)
	amp := min(minContrast+stdFrac*std, 70)
	if kind != Dent {
		// Keep the defect inside the grey range so clipping does not erase it.
		if sign < 0 && mean-amp < 8 {
			sign = 1
		} else if sign > 0 && mean+amp > 247 {
			sign = -1
		}
		if kind == SmallCrack && sign > 0 && mean > amp+8 {
			sign = -1
		}
	}
	px := make([]float32, len(src))
	for i, v := range src {
		px[i] = float32(v)
	}
	for i, d := range f.d {
		if d == 0 {
			continue
		}
		delta := float32(sign * amp * float64(d))
		for c := range 3 {
			px[3*i+c] += delta
		}
	}
	img = matFromBGR(px, h, w)
	mask = gocv.NewMatWithSize(h, w, gocv.MatTypeCV8U)
	mb, err := mask.DataPtrUint8()
	if err != nil {
		img.Close()
		mask.Close()
		return gocv.Mat{}, gocv.Mat{}, fmt.Errorf("synth: defect on real image: %w", err)
	}
	for i, on := range f.mask {
		if on {
			mb[i] = 255
		}
	}
	return img, mask, nil
}

// stamp is a defect shape in its own coordinates: at gives the unit change
// at a point (in [-1, 1]; 0 outside the shape's support) and whether that
// point belongs to the mask. The shape's support lies within the box
// [-r, r]^2 with r = ext*scale + pad: the soft edge and line width do not
// shrink with the shape.
type stamp struct {
	ext, pad float64
	at       func(x, y, scale float64) (d float32, on bool)
}

// field is a stamp drawn on an image grid.
type field struct {
	d    []float32
	mask []bool
	bbox [4]int // x0, y0, x1, y1 of the changed pixels, exclusive ends
}

// render places the stamp with its centre at the fractions fx, fy of the
// free range inside the border margin, so a given seed lands on the same
// spot of any image of that size.
func (s stamp) render(h, w int, scale, fx, fy float64) *field {
	ext := s.ext*scale + s.pad
	place := func(n int, frac float64) float64 {
		lo, hi := realMargin*float64(n)+ext, float64(n)*(1-realMargin)-ext
		if hi < lo {
			return float64(n) / 2
		}
		return lo + frac*(hi-lo)
	}
	cx, cy := place(w, fx), place(h, fy)
	f := &field{d: make([]float32, h*w), mask: make([]bool, h*w)}
	x0, x1 := max(0, int(cx-ext)), min(w, int(cx+ext)+2)
	y0, y1 := max(0, int(cy-ext)), min(h, int(cy+ext)+2)
	f.bbox = [4]int{x0, y0, x1, y1}
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			d, on := s.at(float64(x)-cx, float64(y)-cy, scale)
			f.d[y*w+x], f.mask[y*w+x] = d, on
		}
	}
	return f
}

// localStats returns the grey mean and standard deviation around the box:
// the defect's contrast is judged against its own neighbourhood, not the
// whole image, so it is equally visible on a busbar or a plain cell.
func localStats(grey []float32, w int, bb [4]int) (mean, std float64) {
	h := len(grey) / w
	pad := max(8, (bb[2]-bb[0])/2, (bb[3]-bb[1])/2)
	x0, y0 := max(0, bb[0]-pad), max(0, bb[1]-pad)
	x1, y1 := min(w, bb[2]+pad), min(h, bb[3]+pad)
	var s, s2, n float64
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			v := float64(grey[y*w+x])
			s += v
			s2 += v * v
			n++
		}
	}
	mean = s / n
	return mean, math.Sqrt(max(0, s2/n-mean*mean))
}

// softEdge is 1 well inside a boundary and 0 beyond feather outside it, at
// signed distance e (positive outside). The smooth step keeps the edge soft
// while bounding how far the change reaches past the mask.
func softEdge(e, feather float64) float64 {
	return smooth(clamp01((feather - e) / (2 * feather)))
}

// newSpot is a slightly irregular ellipse, a little stronger in its middle.
func newSpot(rng *rand.Rand, side, area float64) stamp {
	target := (0.0015 + 0.0045*rng.Float64()) * area
	aspect := 1 + 0.8*rng.Float64()
	a := math.Sqrt(target * aspect / math.Pi)
	b := a / aspect
	rot := rng.Float64() * math.Pi
	lobes := float64(2 + rng.IntN(3))
	phase := rng.Float64() * 2 * math.Pi
	wob := 0.08 + 0.1*rng.Float64()
	cr, sr := math.Cos(rot), math.Sin(rot)
	return stamp{ext: a * (1 + wob), pad: 6, at: func(x, y, scale float64) (float32, bool) {
		u, v := (x*cr+y*sr)/(a*scale), (-x*sr+y*cr)/(b*scale)
		rho := math.Hypot(u, v)
		edge := 1 + wob*math.Sin(lobes*math.Atan2(v, u)+phase)
		feather := min(3, max(1, 0.3*b*scale))
		al := softEdge((rho-edge)*b*scale, feather)
		if al == 0 {
			return 0, false
		}
		d := al * (0.75 + 0.25*clamp01(1-rho*rho))
		return float32(d), d >= maskThreshold
	}}
}

// newDent is a small bump lit from one side: the shading is the slope of a
// smooth dome along the light's direction, so one half is brighter and the
// other darker, and the mask is the whole dome.
func newDent(rng *rand.Rand, side, area float64) stamp {
	target := (0.002 + 0.005*rng.Float64()) * area
	aspect := 1 + 0.4*rng.Float64()
	a := math.Sqrt(target * aspect / math.Pi)
	b := a / aspect
	rot := rng.Float64() * math.Pi
	light := rng.Float64() * 2 * math.Pi
	cr, sr := math.Cos(rot), math.Sin(rot)
	cl, sl := math.Cos(light), math.Sin(light)
	const peak = 0.2862 // max of r(1-r^2)^2, at r = 1/sqrt(5)
	return stamp{ext: a, pad: 1, at: func(x, y, scale float64) (float32, bool) {
		u, v := (x*cr+y*sr)/(a*scale), (-x*sr+y*cr)/(b*scale)
		r2 := u*u + v*v
		if r2 >= 1 {
			return 0, false
		}
		p := (1 - r2) * (1 - r2)
		return float32(max(-1, min(1, (u*cl+v*sl)*p/peak))), true
	}}
}

// newScratch is a thin circular arc that fades in and out at its ends.
func newScratch(rng *rand.Rand, side float64) stamp {
	length := (0.12 + 0.18*rng.Float64()) * side
	width := max(1.2, 0.004*side) + max(0.8, 0.004*side)*rng.Float64()
	turn := (0.3 + 0.9*rng.Float64()) * float64(1-2*rng.IntN(2))
	heading := rng.Float64() * 2 * math.Pi
	n := max(8, int(length))
	pts := make([][2]float64, n+1)
	x, y := 0.0, 0.0
	for i := range pts {
		pts[i] = [2]float64{x, y}
		a := heading + turn*float64(i)/float64(n)
		x += length / float64(n) * math.Cos(a)
		y += length / float64(n) * math.Sin(a)
	}
	centre(pts)
	return lineStamp([]polyline{{pts, width, true}})
}

// newCrack is a jagged random walk with one shorter, thinner branch.
func newCrack(rng *rand.Rand, side float64) stamp {
	length := (0.12 + 0.13*rng.Float64()) * side
	width := max(1.0, 0.004*side) + max(0.6, 0.003*side)*rng.Float64()
	step := max(3, 0.025*side)
	walk := func(x, y, heading, length float64) [][2]float64 {
		pts := [][2]float64{{x, y}}
		for l := 0.0; l < length; l += step {
			a := heading + 0.5*rng.NormFloat64()
			heading += 0.15 * rng.NormFloat64() // a crack wanders but keeps its course
			x += step * math.Cos(a)
			y += step * math.Sin(a)
			pts = append(pts, [2]float64{x, y})
		}
		return pts
	}
	heading := rng.Float64() * 2 * math.Pi
	main := walk(0, 0, heading, length)
	at := main[len(main)*3/10+rng.IntN(max(1, len(main)*4/10))]
	turn := (0.4 + 0.6*rng.Float64()) * float64(1-2*rng.IntN(2))
	branch := walk(at[0], at[1], heading+turn, (0.3+0.2*rng.Float64())*length)
	all := append(slices.Clone(main), branch...)
	cx, cy := centre(all)
	for _, p := range [][][2]float64{main, branch} {
		for i := range p {
			p[i][0] -= cx
			p[i][1] -= cy
		}
	}
	return lineStamp([]polyline{{main, width, false}, {branch, 0.75 * width, true}})
}

type polyline struct {
	pts   [][2]float64
	width float64
	taper bool // fade out towards the ends
}

// centre moves the points so their bounding box is centred on the origin
// and returns the shift applied.
func centre(pts [][2]float64) (cx, cy float64) {
	x0, y0, x1, y1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, p := range pts {
		x0, x1 = min(x0, p[0]), max(x1, p[0])
		y0, y1 = min(y0, p[1]), max(y1, p[1])
	}
	cx, cy = (x0+x1)/2, (y0+y1)/2
	for i := range pts {
		pts[i][0] -= cx
		pts[i][1] -= cy
	}
	return cx, cy
}

// lineStamp draws polylines with a soft edge of under a pixel, the width
// unchanged by the drawing scale so shrinking shortens rather than thins.
func lineStamp(lines []polyline) stamp {
	var ext, total float64
	for _, l := range lines {
		for _, p := range l.pts {
			ext = max(ext, math.Abs(p[0]), math.Abs(p[1]))
		}
		total = max(total, l.width)
	}
	const feather = 0.6
	return stamp{ext: ext, pad: total + 2, at: func(x, y, scale float64) (float32, bool) {
		var best float64
		for _, l := range lines {
			dist, t := polyDist(l.pts, x/scale, y/scale)
			al := softEdge(dist*scale-l.width/2, feather)
			if l.taper {
				al *= smooth(clamp01(min(t, 1-t) / 0.15))
			}
			best = max(best, al)
		}
		return float32(best), best >= maskThreshold
	}}
}

// polyDist returns the distance from (x, y) to the polyline and the
// position along it (0 at the first point, 1 at the last) of the nearest point.
func polyDist(pts [][2]float64, x, y float64) (dist, t float64) {
	dist = math.Inf(1)
	var run, at float64
	for i := 1; i < len(pts); i++ {
		ax, ay := pts[i-1][0], pts[i-1][1]
		dx, dy := pts[i][0]-ax, pts[i][1]-ay
		l2 := dx*dx + dy*dy
		seg := math.Sqrt(l2)
		s := 0.0
		if l2 > 0 {
			s = clamp01(((x-ax)*dx + (y-ay)*dy) / l2)
		}
		if d := math.Hypot(x-ax-s*dx, y-ay-s*dy); d < dist {
			dist, at = d, run+s*seg
		}
		run += seg
	}
	if run > 0 {
		t = at / run
	}
	return dist, t
}

// WriteDatasetOnReal writes a development set with pixel ground truth in
// MVTec AD layout under dir, made from the user's own good images:
//
//	train/good/000.png ...            the first nTrain good files
//	test/good/000.png ...             the next nTestGood, untouched
//	test/<kind>/000.png ...           nPerKind per SmallKind, each from a further good file
//	ground_truth/<kind>/000_mask.png  their masks (0/255)
//
// No good file is used twice, so a defective test image never shares its
// background with a training or good test image. PNG files are copied byte
// for byte; other formats are re-encoded as PNG. Images that were grey stay
// grey. Deterministic for the files, their order and seed; files are
// replaced atomically.
func WriteDatasetOnReal(dir string, goodFiles []string, nTrain, nTestGood, nPerKind int, seed int64) error {
	if nTrain < 0 || nTestGood < 0 || nPerKind < 0 {
		return fmt.Errorf("synth: write real-image data set %s: negative image count", dir)
	}
	need := nTrain + nTestGood + nPerKind*len(SmallKinds)
	if len(goodFiles) < need {
		return fmt.Errorf("synth: write real-image data set %s: %d good images given, %d needed (%d train + %d good test + %d per kind x %d kinds, each image used once)",
			dir, len(goodFiles), need, nTrain, nTestGood, nPerKind, len(SmallKinds))
	}
	// A seeded shuffle makes the train, good test and defect images
	// exchangeable: in name order they come from different modules or
	// batches, and a method could then score the batch, not the defect.
	goodFiles = slices.Clone(goodFiles)
	rng := newRNG(seed, 0x5ee)
	rng.Shuffle(len(goodFiles), func(i, j int) { goodFiles[i], goodFiles[j] = goodFiles[j], goodFiles[i] })
	next := 0
	for _, g := range []struct {
		sub string
		n   int
	}{{filepath.Join("train", "good"), nTrain}, {filepath.Join("test", "good"), nTestGood}} {
		for i := range g.n {
			if err := copyGood(goodFiles[next], filepath.Join(dir, g.sub), fmt.Sprintf("%03d.png", i)); err != nil {
				return fmt.Errorf("synth: write real-image data set: %w", err)
			}
			next++
		}
	}
	for _, k := range SmallKinds {
		for i := range nPerKind {
			err := writeDefectOnReal(dir, goodFiles[next], k, i, deriveSeed(seed, "onreal/"+string(k), i))
			if err != nil {
				return fmt.Errorf("synth: write real-image data set: %w", err)
			}
			next++
		}
	}
	return nil
}

// copyGood copies a good image into the set, checking that it decodes so a
// broken file is found now rather than during an evaluation.
func copyGood(src, dir, name string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	m, err := imageops.Decode(data)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	defer m.Close()
	if strings.EqualFold(filepath.Ext(src), ".png") {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return imageops.WriteFileAtomic(filepath.Join(dir, name), data)
	}
	return writeMaybeGrey(dir, name, m)
}

func writeDefectOnReal(dir, src string, k SmallKind, i int, seed int64) error {
	good, err := imageops.ReadFile(src)
	if err != nil {
		return err
	}
	defer good.Close()
	img, mask, err := DefectOnReal(good, k, seed)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	defer img.Close()
	defer mask.Close()
	name := fmt.Sprintf("%03d", i)
	return errors.Join(
		writeMaybeGrey(filepath.Join(dir, "test", string(k)), name+".png", img),
		writePNG(filepath.Join(dir, "ground_truth", string(k)), name+"_mask.png", mask))
}

// writeMaybeGrey writes a BGR image as a one-channel PNG when its channels
// are equal, so defective images match the grey good images they came from.
func writeMaybeGrey(dir, name string, m gocv.Mat) error {
	b, err := m.DataPtrUint8()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	for i := 0; i+2 < len(b); i += 3 {
		if b[i] != b[i+1] || b[i] != b[i+2] {
			return writePNG(dir, name, m)
		}
	}
	g := gocv.NewMat()
	defer g.Close()
	gocv.CvtColor(m, &g, gocv.ColorBGRToGray)
	return writePNG(dir, name, g)
}
