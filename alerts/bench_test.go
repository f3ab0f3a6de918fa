package alerts

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkSpoolAppend measures the durable write Publish waits for: one
// event with a 20 KB heatmap (temp file, fsync, rename, directory fsync).
func BenchmarkSpoolAppend(b *testing.B) {
	log, _ := testLogger(b)
	s, err := openSpool(b.TempDir(), 1<<40, 1<<30, log)
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	hm := make([]byte, 20<<10)
	ev := eventJSONWithHeatmap("bench")
	b.SetBytes(int64(len(hm) + len(ev)))
	for b.Loop() {
		if _, err := s.append(ev, hm); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublishDelivered measures events per second from Publish to the
// broker's PUBACK through a real mosquitto on loopback, each with a JPEG
// heatmap.
func BenchmarkPublishDelivered(b *testing.B) {
	bk := startBroker(b, brokerOptions{})
	cfg := testConfig(b, bk.url("tcp"), "bench")
	p := newPublisher(b, cfg)
	hm := testJPEG(b, 1)
	b.SetBytes(int64(len(hm)))
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		if err := p.Publish(context.Background(), Event{Seq: uint64(i), Verdict: VerdictDefect}, hm); err != nil {
			b.Fatal(err)
		}
	}
	for p.Published() < uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkDrainBacklog measures how fast a spool filled during an outage
// empties once the broker is reachable (ns/op is per event, heatmap included).
func BenchmarkDrainBacklog(b *testing.B) {
	bk := startBroker(b, brokerOptions{})
	hm := testJPEG(b, 1)
	cfg := testConfig(b, bk.url("tcp"), "drain")
	// Written directly (no fsync): the drain rate is what is measured.
	for seq := 1; seq <= b.N; seq++ {
		path := filepath.Join(cfg.SpoolDir, fmt.Sprintf("%020d%s", seq, spoolExt))
		if err := os.WriteFile(path, encodeEntry(eventJSONWithHeatmap(NewID()), hm), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	p := newPublisher(b, cfg)
	for p.Published() < uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
