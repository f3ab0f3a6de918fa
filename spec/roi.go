package spec

import (
	"fmt"
	"image"
	"strconv"
	"strings"
)

// MaxROI bounds each of a region's numbers: no camera image is a million
// pixels wide, and the bound keeps x+w from overflowing.
const MaxROI = 1 << 20

// ParseROI parses a region of interest written "x,y,w,h" (pixels, origin at
// the top-left corner). Whether it fits an image is checked by imageops.Crop.
func ParseROI(s string) (image.Rectangle, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return image.Rectangle{}, fmt.Errorf("parse ROI %q: want x,y,w,h (4 integers), got %d fields", s, len(parts))
	}
	var v [4]int
	names := [4]string{"x", "y", "w", "h"}
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return image.Rectangle{}, fmt.Errorf("parse ROI %q: %s is not an integer: %w", s, names[i], err)
		}
		v[i] = n
	}
	switch {
	case v[0] < 0 || v[1] < 0:
		return image.Rectangle{}, fmt.Errorf("parse ROI %q: x and y must be >= 0", s)
	case v[2] <= 0 || v[3] <= 0:
		return image.Rectangle{}, fmt.Errorf("parse ROI %q: w and h must be > 0", s)
	case max(v[0], v[1], v[2], v[3]) > MaxROI:
		return image.Rectangle{}, fmt.Errorf("parse ROI %q: x, y, w and h must be at most %d", s, MaxROI)
	}
	return image.Rect(v[0], v[1], v[0]+v[2], v[1]+v[3]), nil
}
