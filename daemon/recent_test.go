package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRecentRing(t *testing.T) {
	r := newRecent(3)
	for i := 1; i <= 5; i++ {
		part := fmt.Sprintf("p%d", i)
		if i == 5 {
			part = "p4" // a part id seen again: the newest event wins
		}
		r.add(record{EventID: fmt.Sprintf("e%d", i), PartID: part, Score: float64(i)}, 3)
	}
	for _, tc := range []struct {
		name          string
		event, part   string
		want          float64
		found, repeat bool
	}{
		{"evicted by id", "e1", "", 0, false, false},
		{"evicted by part", "", "p2", 0, false, false},
		{"by id", "e3", "", 3, true, false},
		{"by part, newest", "", "p4", 5, true, false},
		{"id wins over part", "e4", "p3", 4, true, false},
		{"unknown id falls back to part", "nope", "p3", 3, true, true},
		{"empty ids", "", "", 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, ok := r.label(tc.event, tc.part, "good")
			if ok != tc.found || rec.Score != tc.want || (rec.labeled != "") != tc.repeat {
				t.Errorf("label(%q, %q) = %+v, %v", tc.event, tc.part, rec, ok)
			}
		})
	}
	if len(r.byID) != 3 || len(r.byPart) != 2 {
		t.Errorf("index sizes %d, %d: evicted entries linger", len(r.byID), len(r.byPart))
	}
	off := newRecent(0)
	off.add(record{EventID: "e"}, 0)
	if _, ok := off.label("e", "", "good"); ok {
		t.Error("a zero-size memory remembered an event")
	}
}

func TestLoadEvidence(t *testing.T) {
	dir := t.TempDir()
	var warned []string
	warn := func(msg string, _ ...any) { warned = append(warned, msg) }
	for _, tc := range []struct {
		name    string
		content string
		want    int
		warn    bool
	}{
		{"missing", "", 0, false},
		{"good lines", "{\"a\":1}\n{\"b\":2}\n", 2, false},
		{"bad lines dropped", "{\"a\":1}\nnot json\n\n[1]\n{\"c\":3}", 2, false},
		{"kept to the bound", strings.Repeat("{\"a\":1}\n", maxEvidence+10), maxEvidence, false},
		{"too large", strings.Repeat(" ", maxEvidenceBytes+1), 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			warned = nil
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if tc.name != "missing" {
				os.WriteFile(p, []byte(tc.content), 0o644)
			}
			if got := loadEvidence(p, warn); len(got) != tc.want || (len(warned) > 0) != tc.warn {
				t.Errorf("%d lines, warnings %v; want %d", len(got), warned, tc.want)
			}
		})
	}
}
