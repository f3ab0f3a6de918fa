package synth

import (
	"fmt"
	"math"

	"gocv.io/x/gocv"
)

// MinSize is the smallest image side Good draws; below it the part's
// details are smaller than a pixel.
const MinSize = 64

// The part: a turned steel flange seen from above on a dark conveyor belt,
// lit from the top left. Radii are fractions of the outer radius R.
const (
	partRadius    = 0.36 // R as a fraction of the image side
	boreRadius    = 0.20
	hubChamfer    = 0.27
	grooveIn      = 0.62
	grooveOut     = 0.655
	boltRing      = 0.78
	boltRadius    = 0.055
	bolts         = 4
	outerChamfer  = 0.90
	lightAngle    = -3 * math.Pi / 4 // from the top left (y down)
	shadowFactor  = 0.62             // belt brightness under the part's shadow
	metalBase     = 165.0
	backgroundLvl = 42.0
)

// geometry is what varies in placement between parts.
type geometry struct {
	cx, cy, r float64 // centre and outer radius, pixels
	rot       float64 // rotation of the part, radians
}

// Good draws a defect-free part: a machined steel flange (central bore,
// chamfers, a groove, four bolt holes, turning marks, an anisotropic
// highlight) on a textured dark belt with the part's shadow and sensor
// noise. Between seeds the part moves by up to 1.5% of the image, turns by
// any angle, changes size by up to 1.5% and brightness by up to 4%, and all
// textures and noise differ. The result is 8UC3 BGR, size x size. Panics if
// size < MinSize.
func Good(seed int64, size int) gocv.Mat {
	if size < MinSize {
		panic(fmt.Sprintf("synth: Good: size %d below the minimum %d", size, MinSize))
	}
	px := renderGood(seed, size)
	return matFromBGR(px, size, size)
}

func renderGood(seed int64, size int) []float32 {
	rng := newRNG(seed, 1)
	S := float64(size)
	g := geometry{
		cx:  (S-1)/2 + (rng.Float64()*2-1)*0.015*S,
		cy:  (S-1)/2 + (rng.Float64()*2-1)*0.015*S,
		r:   partRadius * S * (1 + (rng.Float64()*2-1)*0.015),
		rot: rng.Float64() * 2 * math.Pi,
	}
	bright := 1 + (rng.Float64()*2-1)*0.04
	highlight := lightAngle + math.Pi/2 + (rng.Float64()*2-1)*0.12
	belt := newNoise2(rng, 16)
	beltFine := newNoise2(rng, 64)
	blotch := newNoise2(rng, 8)
	turning := newNoise1(rng, 512)
	grain := newNoise2(rng, 128)

	R := g.r
	px := make([]float32, 3*size*size)
	for y := range size {
		for x := range size {
			fx, fy := float64(x)/S, float64(y)/S
			// Belt: woven texture stretched along the running direction (x).
			bg := backgroundLvl + 7*float64(belt.at(fx*6, fy*6)) + 4*float64(beltFine.at(fx*8, fy*64))
			dx, dy := float64(x)-g.cx, float64(y)-g.cy
			// Soft shadow cast down-right.
			sd := math.Hypot(dx-0.04*R, dy-0.06*R)
			shadow := 1 - (1-shadowFactor)*clamp01((R*1.04-sd)/(0.08*R)+0.5)
			bg *= shadow
			hole := bg * 0.75 // seen through the part: deeper shadow

			r := math.Hypot(dx, dy)
			u := r / R
			phi := math.Atan2(dy, dx)
			cover := clamp01(R - r + 0.5)
			cover *= 1 - clamp01(boreRadius*R-r+0.5)
			var metal float64
			if cover > 0 {
				metal, cover = shadeMetal(g, u, phi, r, cover, highlight, blotch, turning, grain, dx, dy)
				metal *= bright
			}
			v := cover*metal + (1-cover)*hole
			if cover == 0 {
				v = bg
				if r < boreRadius*R {
					v = hole
				}
			}
			// Steel is slightly cool, the belt slightly warm.
			tb, tg, tr := 1.0+0.04*cover, 1.0, 1.0-0.03*cover+0.03*(1-cover)
			i := 3 * (y*size + x)
			px[i] = float32(v * tb)
			px[i+1] = float32(v * tg)
			px[i+2] = float32(v * tr)
		}
	}
	addSensorNoise(px, rng)
	return px
}

// shadeMetal returns the brightness of the part's surface at a point and
// the point's coverage by material after the bolt holes are cut out.
func shadeMetal(g geometry, u, phi, r, cover, highlight float64, blotch *noise2, turning *noise1, grain *noise2, dx, dy float64) (float64, float64) {
	R := g.r
	// Part-fixed coordinates, so textures turn with the part.
	c, s := math.Cos(-g.rot), math.Sin(-g.rot)
	qx, qy := (dx*c-dy*s)/R, (dx*s+dy*c)/R

	v := metalBase
	v += 7 * float64(turning.at(u*260))            // turning marks: concentric
	v += 6 * float64(blotch.at(qx*3+4, qy*3+4))    // uneven finish
	v += 3 * float64(grain.at(qx*40+64, qy*40+64)) // fine grain
	v += 10 * math.Cos(phi-lightAngle) * u         // light falls off across the face
	// Anisotropic highlight of a turned surface: a bright band across the
	// centre, perpendicular-ish to the light.
	a := math.Min(angleDiff(phi, highlight), angleDiff(phi, highlight+math.Pi))
	v += 28 * math.Exp(-a*a/(2*0.22*0.22)) * clamp01((u-0.22)*3)

	switch {
	case u < hubChamfer:
		// Chamfer sloping down into the bore: lit on the side away from the light.
		v *= 0.85 + 0.2*math.Cos(phi-lightAngle-math.Pi)
	case u >= outerChamfer:
		v *= 0.85 + 0.22*math.Cos(phi-lightAngle)
	}
	// Groove: dark, with a bright lip on its lit edge.
	gIn, gOut := grooveIn*R, grooveOut*R
	groove := clamp01(r-gIn+0.5) * clamp01(gOut-r+0.5)
	v *= 1 - 0.25*groove

	// Bolt holes: cut out, with a thin bright rim on the far side.
	for k := range bolts {
		ang := g.rot + float64(k)*2*math.Pi/bolts
		hx, hy := boltRing*R*math.Cos(ang), boltRing*R*math.Sin(ang)
		d := math.Hypot(dx-hx, dy-hy)
		hr := boltRadius * R
		if d < hr+3 {
			cover *= 1 - clamp01(hr-d+0.5)
			rim := clamp01(1.5 - math.Abs(d-hr-1))
			side := math.Cos(math.Atan2(dy-hy, dx-hx) - lightAngle - math.Pi)
			v *= 1 + 0.25*rim*side
		}
	}
	return v, cover
}

func addSensorNoise(px []float32, rng interface{ NormFloat64() float64 }) {
	for i := 0; i < len(px); i += 3 {
		l := float32(rng.NormFloat64() * 2.2)
		for c := range 3 {
			px[i+c] += l + float32(rng.NormFloat64()*0.8)
		}
	}
}

// matFromBGR rounds and clips float BGR pixels into a new 8UC3 Mat.
func matFromBGR(px []float32, rows, cols int) gocv.Mat {
	m := gocv.NewMatWithSize(rows, cols, gocv.MatTypeCV8UC3)
	b, err := m.DataPtrUint8()
	if err != nil {
		m.Close()
		panic("synth: " + err.Error())
	}
	for i, v := range px {
		b[i] = uint8(min(max(v+0.5, 0), 255))
	}
	return m
}
