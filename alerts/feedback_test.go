package alerts

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode"
)

func TestParseFeedback(t *testing.T) {
	long := strings.Repeat("x", maxPartIDBytes+1)
	for _, tc := range []struct {
		name    string
		payload string
		want    Feedback
		wantErr string
	}{
		{"by event id", `{"event_id":"4bcbc35f","label":"good"}`, Feedback{EventID: "4bcbc35f", Label: LabelGood}, ""},
		{"by part id", `{"part_id":" A-17 ","label":"defect"}`, Feedback{PartID: "A-17", Label: LabelDefect}, ""},
		{"both ids", `{"event_id":"e","part_id":"p","label":"good"}`, Feedback{EventID: "e", PartID: "p", Label: LabelGood}, ""},
		{"no id", `{"label":"good"}`, Feedback{}, "needs a non-empty event_id or part_id"},
		{"empty ids", `{"event_id":"","part_id":"  ","label":"good"}`, Feedback{}, "needs a non-empty"},
		{"no label", `{"event_id":"e"}`, Feedback{}, "label missing"},
		{"other label", `{"event_id":"e","label":"bad"}`, Feedback{}, `label "bad"`},
		{"label case", `{"event_id":"e","label":"Good"}`, Feedback{}, `label "Good"`},
		{"unknown field", `{"event_id":"e","label":"good","lable":"x"}`, Feedback{}, "unknown field"},
		{"number id", `{"event_id":7,"label":"good"}`, Feedback{}, "want JSON"},
		{"not JSON", `good`, Feedback{}, "want JSON"},
		{"empty", ``, Feedback{}, "want JSON"},
		{"array", `[{"event_id":"e","label":"good"}]`, Feedback{}, "want JSON"},
		{"two objects", `{"event_id":"e","label":"good"}{"event_id":"f","label":"good"}`, Feedback{}, "data after"},
		{"id too long", `{"event_id":"` + long + `","label":"good"}`, Feedback{}, "at most 256 bytes"},
		{"control character", `{"part_id":"a\u0007b","label":"good"}`, Feedback{}, "control characters"},
		{"not UTF-8", "{\"part_id\":\"\xff\",\"label\":\"good\"}", Feedback{}, "not UTF-8"},
		{"too large", `{"event_id":"e","label":"good","x":"` + strings.Repeat(" ", MaxFeedbackBytes) + `"}`, Feedback{}, "at most 1024"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFeedback([]byte(tc.payload))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrFeedback) {
					t.Fatalf("err %v, want %q wrapping ErrFeedback", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestFeedbackRoundTrip(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	const camera = "cam-fb"
	topic := TopicsFor(DefaultTopicPrefix, camera).Feedback
	// A retained verdict left on the broker is delivered refused, not counted twice.
	publishRaw(t, b.url("tcp"), topic, []byte(`{"event_id":"stale","label":"good"}`), true)
	p := newPublisher(t, testConfig(t, b.url("tcp"), camera))
	eventually(t, 3*time.Second, "connection", p.Connected)

	// Deliveries may come in any order (paho runs handlers concurrently).
	var got []Feedback
	seen := func(match func(Feedback) bool) bool {
		for _, fb := range got {
			if match(fb) {
				return true
			}
		}
		return false
	}
	isE1 := func(fb Feedback) bool { return fb.EventID == "e1" && fb.Err == nil }
	isStale := func(fb Feedback) bool { return fb.Err != nil && strings.Contains(fb.Err.Error(), "retained") }
	// Publish until the subscription is in place (no fixed wait).
	deadline := time.Now().Add(5 * time.Second)
	for !seen(isE1) || !seen(isStale) {
		if !seen(isE1) {
			publishRaw(t, b.url("tcp"), topic, []byte(`{"event_id":"e1","label":"good"}`), false)
		}
		select {
		case fb := <-p.Feedback():
			got = append(got, fb)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("want e1 and the retained message refused; got %+v", got)
		}
	}
	for _, fb := range got {
		if !isE1(fb) && !isStale(fb) {
			t.Errorf("unexpected delivery %+v", fb)
		}
	}

	got = nil
	publishRaw(t, b.url("tcp"), topic, []byte(`{"part_id":"P-9","label":"defect"}`), false)
	publishRaw(t, b.url("tcp"), topic, []byte(strings.Repeat("{", MaxFeedbackBytes+1)), false)
	publishRaw(t, b.url("tcp"), topic, []byte(`{"part_id":"P-9","label":"meh"}`), false)
	want := []func(Feedback) bool{
		func(fb Feedback) bool {
			return fb.Err == nil && fb.PartID == "P-9" && fb.Label == LabelDefect && !fb.Time.IsZero()
		},
		func(fb Feedback) bool { return fb.Err != nil && strings.Contains(fb.Err.Error(), "at most 1024") },
		func(fb Feedback) bool { return fb.Err != nil && strings.Contains(fb.Err.Error(), `label "meh"`) },
	}
	deadline = time.Now().Add(5 * time.Second)
	for len(got) < 3 {
		select {
		case fb := <-p.Feedback():
			if !isE1(fb) { // late copies of the loop above
				got = append(got, fb)
			}
		case <-time.After(time.Until(deadline)):
			t.Fatalf("3 deliveries wanted, got %+v", got)
		}
	}
	for i, w := range want {
		if !seen(w) {
			t.Errorf("delivery %d not among %+v", i, got)
		}
	}
}

// FuzzParseFeedback: any payload is refused with an error wrapping
// ErrFeedback or accepted as a verdict the daemon can act on (a known label,
// an id, no control characters, bounded ids). Run with
// go test -run '^$' -fuzz FuzzParseFeedback -fuzztime 30s ./alerts/
func FuzzParseFeedback(f *testing.F) {
	for _, s := range []string{
		`{"event_id":"4bcbc35f","label":"good"}`,
		`{"part_id":" A-17 ","label":"defect"}`,
		`{"event_id":"e","part_id":"p","label":"good"}`,
		`{"event_id":"\u0007","label":"good"}`,
		`{"event_id":"e","label":"good"} {}`,
		`[]`, ``, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		fb, err := ParseFeedback(payload)
		if err != nil {
			if !errors.Is(err, ErrFeedback) {
				t.Fatalf("error %v does not wrap ErrFeedback", err)
			}
			return
		}
		if fb.Label != LabelGood && fb.Label != LabelDefect {
			t.Fatalf("accepted label %q", fb.Label)
		}
		if fb.EventID == "" && fb.PartID == "" {
			t.Fatal("accepted a verdict without an id")
		}
		for _, id := range []string{fb.EventID, fb.PartID} {
			if len(id) > maxPartIDBytes || strings.TrimSpace(id) != id || strings.ContainsFunc(id, unicode.IsControl) {
				t.Fatalf("accepted id %q", id)
			}
		}
	})
}
