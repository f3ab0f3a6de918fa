package daemon

import (
	"image"
	"math"

	"github.com/inspectd/inspectd/alerts"
)

// locate finds the defect on a size x size heatmap that covers part (the
// ROI, or the whole frame, in frame pixels): the hottest cell, and the
// 4-connected region around it whose heat is above the level halfway from
// good (the heat good parts reach) to the peak: a defect lifts the heat of
// the whole part above the good level, so that level alone would outline
// the whole part (measured). Nil without a usable heatmap.
func locate(heat []float32, size int, part image.Rectangle, good float64) *alerts.Location {
	if size <= 0 || len(heat) != size*size || part.Empty() {
		return nil
	}
	peak := -1
	for i, v := range heat {
		if !math.IsNaN(float64(v)) && (peak < 0 || v > heat[peak]) {
			peak = i
		}
	}
	if peak < 0 {
		return nil
	}
	level := good + (float64(heat[peak])-good)/2
	sx, sy := float64(part.Dx())/float64(size), float64(part.Dy())/float64(size)
	px, py := peak%size, peak/size
	minX, minY, maxX, maxY, cells := px, py, px, py, 1
	if float64(heat[peak]) > level {
		// Flood fill from the peak over cells above level.
		seen := make([]bool, len(heat))
		seen[peak] = true
		stack := []int{peak}
		cells = 0
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			cells++
			x, y := i%size, i/size
			minX, minY, maxX, maxY = min(minX, x), min(minY, y), max(maxX, x), max(maxY, y)
			for _, n := range [4][2]int{{x - 1, y}, {x + 1, y}, {x, y - 1}, {x, y + 1}} {
				if n[0] < 0 || n[1] < 0 || n[0] >= size || n[1] >= size {
					continue
				}
				j := n[1]*size + n[0]
				if !seen[j] && float64(heat[j]) > level {
					seen[j] = true
					stack = append(stack, j)
				}
			}
		}
	}
	ox, oy := float64(part.Min.X), float64(part.Min.Y)
	return &alerts.Location{
		PeakX: round2(ox + (float64(px)+0.5)*sx), PeakY: round2(oy + (float64(py)+0.5)*sy),
		Box: alerts.Box{X: round2(ox + float64(minX)*sx), Y: round2(oy + float64(minY)*sy),
			W: round2(float64(maxX-minX+1) * sx), H: round2(float64(maxY-minY+1) * sy)},
		AreaPx: round2(float64(cells) * sx * sy), Level: round2(level),
	}
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }
