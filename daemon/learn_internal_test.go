package daemon

import (
	"fmt"
	"testing"
)

// The frames kept for learning are bounded by count, oldest out first, and
// each is handed out once.
func TestRejectedFramesBounded(t *testing.T) {
	r := newRejectedFrames(3)
	for i := range 5 {
		r.put(fmt.Sprint(i), []byte{byte(i)})
	}
	r.put("4", []byte{99}) // the same event again: kept as first stored
	for _, tc := range []struct {
		id   string
		want bool
	}{{"0", false}, {"1", false}, {"2", true}, {"3", true}, {"4", true}, {"4", false}} {
		b, ok := r.take(tc.id)
		if ok != tc.want {
			t.Errorf("take(%s) = %v, want %v", tc.id, ok, tc.want)
		}
		if ok && tc.id == "4" && b[0] != 4 {
			t.Errorf("event 4 holds %v, want the frame first stored", b)
		}
	}
	if len(r.png) != 0 || len(r.order) != 0 {
		t.Errorf("left %d frames, order %v", len(r.png), r.order)
	}
}
