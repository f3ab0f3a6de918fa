package daemon

import (
	"image"
	"math"
	"testing"

	"github.com/inspectd/inspectd/alerts"
)

func TestLocate(t *testing.T) {
	// 4x4 heatmap; with good = 1 the level is 3 (halfway to the peak 5): the
	// hot region is the 2x2 block at (1,1)-(2,2); the hot cell at (3,3)
	// touches it only diagonally, so it is not part of it.
	hot := []float32{
		0, 0, 0, 0,
		0, 5, 4, 0,
		0, 4, 4.5, 0,
		0, 0, 0, 4.9,
	}
	for _, c := range []struct {
		name string
		heat []float32
		size int
		part image.Rectangle
		good float64
		want *alerts.Location
	}{
		{"region around the peak, whole frame 400x400", hot, 4, image.Rect(0, 0, 400, 400), 1,
			&alerts.Location{PeakX: 150, PeakY: 150, Box: alerts.Box{X: 100, Y: 100, W: 200, H: 200}, AreaPx: 40000, Level: 3}},
		{"ROI offset and non-square", hot, 4, image.Rect(10, 20, 50, 100), 1,
			&alerts.Location{PeakX: 25, PeakY: 50, Box: alerts.Box{X: 20, Y: 40, W: 20, H: 40}, AreaPx: 800, Level: 3}},
		{"good close to the peak: the peak's cell", hot, 4, image.Rect(0, 0, 4, 4), 4.5,
			&alerts.Location{PeakX: 1.5, PeakY: 1.5, Box: alerts.Box{X: 1, Y: 1, W: 1, H: 1}, AreaPx: 1, Level: 4.75}},
		{"peak below good: the peak's cell", hot, 4, image.Rect(0, 0, 4, 4), 10,
			&alerts.Location{PeakX: 1.5, PeakY: 1.5, Box: alerts.Box{X: 1, Y: 1, W: 1, H: 1}, AreaPx: 1, Level: 7.5}},
		{"NaN cells skipped", []float32{float32(math.NaN()), 1, 2, 0}, 2, image.Rect(0, 0, 2, 2), 5,
			&alerts.Location{PeakX: 0.5, PeakY: 1.5, Box: alerts.Box{X: 0, Y: 1, W: 1, H: 1}, AreaPx: 1, Level: 3.5}},
		{"no heatmap", nil, 4, image.Rect(0, 0, 4, 4), 1, nil},
		{"wrong size", hot[:8], 4, image.Rect(0, 0, 4, 4), 1, nil},
		{"empty part", hot, 4, image.Rectangle{}, 1, nil},
		{"all NaN", []float32{float32(math.NaN())}, 1, image.Rect(0, 0, 4, 4), 1, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := locate(c.heat, c.size, c.part, c.good)
			if (got == nil) != (c.want == nil) || (got != nil && *got != *c.want) {
				t.Errorf("locate = %+v, want %+v", got, c.want)
			}
		})
	}
}
