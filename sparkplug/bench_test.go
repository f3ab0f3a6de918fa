package sparkplug

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/inspectd/inspectd/alerts"
)

// BenchmarkInspected is the Sparkplug cost the inspection loop pays per
// part: a DDATA of 11 metrics built and encoded (no broker: the publish
// itself is paho's queue).
func BenchmarkInspected(b *testing.B) {
	n := &Node{cfg: Config{Control: &fakeControl{thr: 1, on: true}}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		topics: TopicsFor("g", "n", "d", ""), born: true}
	ev := alerts.Event{ID: "7b4e46ed-902e-4eb6-9c71-e1a8a66cad6d", Time: time.Now(), Seq: 1, Score: 9.07, Threshold: 6.05,
		Verdict: alerts.VerdictDefect, ModelID: "626f06044fd3", LatencyMS: 364}
	b.ReportAllocs()
	for b.Loop() {
		n.Inspected(ev, nil)
	}
}
