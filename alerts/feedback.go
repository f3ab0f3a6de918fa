package alerts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Feedback labels.
const (
	LabelGood   = "good"
	LabelDefect = "defect"
)

const (
	// MaxFeedbackBytes bounds a feedback message: a larger one is refused
	// before it is parsed.
	MaxFeedbackBytes = 1024
	feedbackBuffer   = 64
)

// ErrFeedback wraps every reason a feedback message is refused.
var ErrFeedback = errors.New("invalid feedback")

// Feedback is one operator verdict received on <prefix>/<camera>/feedback:
// JSON {"event_id": "...", "label": "good"|"defect"} or with "part_id"
// instead of (or beside) "event_id". A message that could not be accepted
// is delivered too, with Err set (wrapping ErrFeedback), so the daemon counts
// and logs it.
type Feedback struct {
	EventID string `json:"event_id,omitempty"`
	PartID  string `json:"part_id,omitempty"`
	Label   string `json:"label"`
	Time    time.Time
	Err     error `json:"-"`
}

// ParseFeedback reads and validates a feedback payload: at most
// MaxFeedbackBytes of one JSON object with only the fields event_id,
// part_id and label; label good or defect; at least one of event_id and
// part_id; each id UTF-8 of at most 256 bytes without control characters.
func ParseFeedback(payload []byte) (Feedback, error) {
	if len(payload) > MaxFeedbackBytes {
		return Feedback{}, fmt.Errorf("%w: %d bytes, at most %d", ErrFeedback, len(payload), MaxFeedbackBytes)
	}
	if !utf8.Valid(payload) {
		return Feedback{}, fmt.Errorf("%w: not UTF-8", ErrFeedback)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var f struct {
		EventID *string `json:"event_id"`
		PartID  *string `json:"part_id"`
		Label   *string `json:"label"`
	}
	if err := dec.Decode(&f); err != nil {
		return Feedback{}, fmt.Errorf("%w: want JSON {\"event_id\"|\"part_id\": \"...\", \"label\": \"good\"|\"defect\"}: %w", ErrFeedback, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Feedback{}, fmt.Errorf("%w: data after the JSON object", ErrFeedback)
	}
	var out Feedback
	if f.Label == nil || (*f.Label != LabelGood && *f.Label != LabelDefect) {
		got := "missing"
		if f.Label != nil {
			got = fmt.Sprintf("%q", *f.Label)
		}
		return Feedback{}, fmt.Errorf("%w: label %s: want \"good\" or \"defect\"", ErrFeedback, got)
	}
	out.Label = *f.Label
	for _, id := range []struct {
		name string
		v    *string
		dst  *string
	}{{"event_id", f.EventID, &out.EventID}, {"part_id", f.PartID, &out.PartID}} {
		if id.v == nil {
			continue
		}
		s := strings.TrimSpace(*id.v)
		if len(s) > maxPartIDBytes || strings.IndexFunc(s, unicode.IsControl) >= 0 {
			return Feedback{}, fmt.Errorf("%w: %s must be at most %d bytes without control characters", ErrFeedback, id.name, maxPartIDBytes)
		}
		*id.dst = s
	}
	if out.EventID == "" && out.PartID == "" {
		return Feedback{}, fmt.Errorf("%w: needs a non-empty event_id or part_id", ErrFeedback)
	}
	return out, nil
}

func (p *Publisher) onFeedback(_ mqtt.Client, m mqtt.Message) {
	var fb Feedback
	if m.Retained() {
		// A retained verdict would be counted again at every reconnect.
		fb.Err = fmt.Errorf("%w: retained; publish feedback without the retain flag", ErrFeedback)
	} else {
		fb, fb.Err = ParseFeedback(m.Payload())
	}
	fb.Time = time.Now()
	p.trigMu.Lock()
	defer p.trigMu.Unlock()
	if p.trigClosed {
		return
	}
	select {
	case p.feedback <- fb:
	default:
		p.fbDropped.Add(1)
		p.log.Warn("alerts: feedback dropped: the daemon is not reading feedback fast enough")
	}
}

// Feedback delivers the messages received on the feedback topic, refused
// ones with Err set. It is closed by Close.
func (p *Publisher) Feedback() <-chan Feedback { return p.feedback }
