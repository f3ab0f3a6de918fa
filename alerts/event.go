package alerts

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Schema identifiers carried in every JSON message so subscribers can
// recognise the layout and refuse versions they do not know.
const (
	EventSchema  = "inspectd.event/v2" // v1's fields plus EventV2's
	StatusSchema = "inspectd.status/v1"
)

// Verdict is the decision for one part.
type Verdict string

const (
	VerdictOK     Verdict = "ok"
	VerdictDefect Verdict = "defect"
	// VerdictError: the part could not be inspected (no frame after its
	// trigger, a camera failure, an inspection error); Reason says why. A
	// PLC waiting for a part id gets this instead of nothing.
	VerdictError Verdict = "error"
)

// Event is the JSON published on <prefix>/<camera>/event, one per inspection
// (or per defect). Publish fills Schema, ID (when empty), Time (when zero),
// Camera and the Heatmap* fields; the caller fills the rest.
type Event struct {
	Schema string    `json:"schema"`
	ID     string    `json:"id"`   // unique; subscribers drop duplicates by it
	Time   time.Time `json:"time"` // RFC 3339 with nanoseconds, UTC
	Camera string    `json:"camera"`
	// Seq is the daemon's inspection counter; PartID comes from the trigger
	// or the line (may be empty).
	Seq       uint64  `json:"seq"`
	PartID    string  `json:"part_id"`
	Score     float64 `json:"score"`
	Threshold float64 `json:"threshold"`
	Verdict   Verdict `json:"verdict"`
	ModelID   string  `json:"model_id"`
	LatencyMS float64 `json:"latency_ms"`
	// Reason explains an error verdict (empty otherwise).
	Reason string `json:"reason,omitempty"`
	// The heatmap, when there is one, is published as raw JPEG bytes on
	// HeatmapTopic (<prefix>/<camera>/heatmap/<id>) just before this event.
	HeatmapTopic  string `json:"heatmap_topic,omitempty"`
	HeatmapBytes  int    `json:"heatmap_bytes,omitempty"`
	HeatmapSHA256 string `json:"heatmap_sha256,omitempty"` // hex
	EventV2
}

// Status is the retained JSON on <prefix>/<camera>/status. The daemon fills
// State, rates, LastError, ModelID, Provider and Version; SetStatus fills the
// rest when the message is sent.
type Status struct {
	Schema            string  `json:"schema"`
	Camera            string  `json:"camera"`
	State             State   `json:"state"`
	FPS               float64 `json:"fps"`
	InspectionsPerSec float64 `json:"inspections_per_s"`
	LastError         string  `json:"last_error,omitempty"`
	ModelID           string  `json:"model_id,omitempty"`
	Provider          string  `json:"provider,omitempty"`
	SpoolDepth        int     `json:"spool_depth"`
	EventsPublished   uint64  `json:"events_published"`
	EventsDropped     uint64  `json:"events_dropped"`
	// SpoolCorrupt counts spool entries moved aside as unreadable.
	SpoolCorrupt uint64 `json:"spool_corrupt,omitempty"`
	// The spool cannot be written (disk full, I/O error): SpoolHeld events
	// wait in memory and are written again every second.
	SpoolHeld        int       `json:"spool_held,omitempty"`
	SpoolWriteErrors uint64    `json:"spool_write_errors,omitempty"`
	SpoolError       string    `json:"spool_error,omitempty"`
	Time             time.Time `json:"time"`
	Version          string    `json:"version,omitempty"`
	// Threshold is the decision threshold in force and ThresholdSource where
	// it came from: calibrated, override (INSPECTD_THRESHOLD), frr
	// (INSPECTD_FRR), refined (moved on the line) or command (Sparkplug
	// DCMD Config/Threshold).
	Threshold       float64 `json:"threshold,omitempty"`
	ThresholdSource string  `json:"threshold_source,omitempty"`
	// Drift says the stream's scores have moved away from their reference;
	// ScoreDrift is how far, in robust deviations of log scores (signed).
	Drift      bool    `json:"drift"`
	ScoreDrift float64 `json:"score_drift"`
	// RejectsHigh says the line rejects more parts than the threshold's
	// target false-reject rate and the line's defect rate explain (good
	// parts unlike the calibration's, or a burst of defects).
	RejectsHigh bool       `json:"rejects_high"`
	Operating   *Operating `json:"operating,omitempty"`
}

// Operating details the operating point in the status message.
type Operating struct {
	TargetFRR float64 `json:"target_frr"`
	// PredictedFRR is the line fit's false-reject rate at the threshold (absent before the first fit).
	PredictedFRR   *float64   `json:"predicted_frr,omitempty"`
	Bounds         [2]float64 `json:"bounds"` // refinement stays within
	Refine         bool       `json:"refine"`
	Inspections    uint64     `json:"inspections"` // scores seen by this model's operating point
	ConfirmedGood  int        `json:"confirmed_good"`
	DriftReference string     `json:"drift_reference,omitempty"` // line or calibration
	// RecentRejects of the RecentDecisions last decided parts were rejected;
	// ExpectedRejectRate is the most the check expects (target FRR + defect rate).
	RecentRejects      int              `json:"recent_rejects"`
	RecentDecisions    int              `json:"recent_decisions"`
	ExpectedRejectRate float64          `json:"expected_reject_rate"`
	LastChange         *ThresholdChange `json:"last_change,omitempty"`
}

// ThresholdChange is one move of the threshold.
type ThresholdChange struct {
	From        float64   `json:"from"`
	To          float64   `json:"to"`
	Reason      string    `json:"reason"` // refined, feedback or restored
	Inspections uint64    `json:"inspections"`
	Time        time.Time `json:"time,omitzero"`
}

// State is where a daemon (or a calibration run) is, the status's "state".
type State string

// Status.State values.
const (
	StateStarting    State = "starting"
	StateRunning     State = "running"
	StateCalibrating State = "calibrating"
	StateDegraded    State = "degraded" // running, but something needs attention (see last_error)
	StatePaused      State = "paused"   // inspection switched off by a command
	StateEnded       State = "ended"    // the video file (without loop) has ended; the daemon stays up
	StateStopping    State = "stopping"
)

// Trigger is one message received on <prefix>/<camera>/trigger: inspect the
// next part, named PartID (possibly empty).
type Trigger struct {
	PartID string
	Time   time.Time // when it was received
}

// NewID returns a random (version 4) UUID.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

// PartEventID derives an event id from what identifies a part (a hot-folder
// file's name, size and modification time; a trigger's part id and receive
// time), as a name-based (version 5 layout, SHA-256) UUID: inspecting the
// same part again after a crash yields the same id, so subscribers that drop
// duplicates by id see it once.
func PartEventID(camera string, parts ...string) string {
	h := sha256.New()
	h.Write([]byte("inspectd.event/v1\x00" + camera))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	var b [16]byte
	copy(b[:], h.Sum(nil))
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

func formatUUID(b [16]byte) string {
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
