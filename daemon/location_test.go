package daemon

import (
	"image"
	"math"
	"testing"

	"github.com/inspectd/inspectd/alerts"
)

func TestLocate(t *testing.T) {
	// 4x4 heatmap; the hot region is the 2x2 block at (1,1)-(2,2) plus a
	// separate hot cell at (3,3) that is not connected to the peak.
	hot := []float32{
		0, 0, 0, 0,
		0, 5, 3, 0,
		0, 2, 4, 0,
		0, 0, 0, 6.5,
	}
	hot[15] = 4.5 // below the peak, above the level: a second region
	for _, c := range []struct {
		name  string
		heat  []float32
		size  int
		part  image.Rectangle
		level float64
		want  *alerts.Location
	}{
		{"region around the peak, whole frame 400x400", hot, 4, image.Rect(0, 0, 400, 400), 1,
			&alerts.Location{PeakX: 150, PeakY: 150, Box: alerts.Box{X: 100, Y: 100, W: 200, H: 200}, AreaPx: 40000, Level: 1}},
		{"ROI offset and non-square", hot, 4, image.Rect(10, 20, 50, 100), 1,
			&alerts.Location{PeakX: 25, PeakY: 50, Box: alerts.Box{X: 20, Y: 40, W: 20, H: 40}, AreaPx: 800, Level: 1}},
		{"level above most: the peak's cell", hot, 4, image.Rect(0, 0, 4, 4), 4.8,
			&alerts.Location{PeakX: 1.5, PeakY: 1.5, Box: alerts.Box{X: 1, Y: 1, W: 1, H: 1}, AreaPx: 1, Level: 4.8}},
		{"peak below level: the peak's cell", hot, 4, image.Rect(0, 0, 4, 4), 10,
			&alerts.Location{PeakX: 1.5, PeakY: 1.5, Box: alerts.Box{X: 1, Y: 1, W: 1, H: 1}, AreaPx: 1, Level: 10}},
		{"NaN cells skipped", []float32{float32(math.NaN()), 1, 2, 0}, 2, image.Rect(0, 0, 2, 2), 5,
			&alerts.Location{PeakX: 0.5, PeakY: 1.5, Box: alerts.Box{X: 0, Y: 1, W: 1, H: 1}, AreaPx: 1, Level: 5}},
		{"no heatmap", nil, 4, image.Rect(0, 0, 4, 4), 1, nil},
		{"wrong size", hot[:8], 4, image.Rect(0, 0, 4, 4), 1, nil},
		{"empty part", hot, 4, image.Rectangle{}, 1, nil},
		{"all NaN", []float32{float32(math.NaN())}, 1, image.Rect(0, 0, 4, 4), 1, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := locate(c.heat, c.size, c.part, c.level)
			if (got == nil) != (c.want == nil) || (got != nil && *got != *c.want) {
				t.Errorf("locate = %+v, want %+v", got, c.want)
			}
		})
	}
}
