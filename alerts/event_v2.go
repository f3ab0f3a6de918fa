package alerts

import "time"

// EventV2 holds what schema inspectd.event/v2 adds to v1; every v1 field
// keeps its name and meaning, so a v1 reader that ignores unknown fields
// reads v2 events unchanged. The daemon fills it; a zero EventV2 adds only
// score_ratio 0.
type EventV2 struct {
	// CapturedAt is when the frame was grabbed (hot folder: when the file
	// was found), TriggeredAt when the trigger message arrived (absent in
	// continuous mode and hot folders).
	CapturedAt  time.Time `json:"captured_at,omitzero"`
	TriggeredAt time.Time `json:"triggered_at,omitzero"`
	// BootID is new at every daemon start: seq restarts at 1 with a new
	// boot id, so a gap in seq within one boot id is a lost event.
	BootID string `json:"boot_id,omitempty"`
	// ScoreRatio is score / threshold (above 1: defect).
	ScoreRatio float64 `json:"score_ratio"`
	// SoftwareVersion of the daemon; ModelCreated when the model was
	// calibrated.
	SoftwareVersion string    `json:"software_version,omitempty"`
	ModelCreated    time.Time `json:"model_created,omitzero"`
	// DefectLocation, for defects with a heatmap.
	DefectLocation *Location `json:"defect_location,omitempty"`
	// OffShape, when present, says how the part's shape lies outside the
	// good parts' the model was calibrated on (a wrong crop, another
	// product, a moved camera): the verdict is still the score's.
	OffShape string `json:"off_shape,omitempty"`
}

// Location says where on the frame a defect is, from its heatmap, in image
// pixels of the full frame (x right, y down).
type Location struct {
	// PeakX, PeakY: the hottest point.
	PeakX float64 `json:"peak_x"`
	PeakY float64 `json:"peak_y"`
	// Box bounds the hot region around the peak: the connected heat above
	// Level, halfway from the heat good parts reach to the peak's. AreaPx
	// is that region's area. The heatmap is coarse (backbone stride 32):
	// the box outlines where to look, not the defect's exact shape.
	Box    Box     `json:"box"`
	AreaPx float64 `json:"area_px"`
	Level  float64 `json:"level"`
}

// Box is a rectangle in image pixels.
type Box struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
	W float64 `json:"w"`
	H float64 `json:"h"`
}
