package alerts_test

import (
	"context"
	"log"
	"time"

	"github.com/inspectd/inspectd/alerts"
)

func Example() {
	ctx := context.Background()
	p, err := alerts.New(ctx, alerts.Config{
		Brokers:  []string{"ssl://broker.plant.local:8883"},
		Camera:   "cam0",
		Username: "cam0", Password: "secret",
		CAFile:   "/etc/inspectd/ca.pem",
		SpoolDir: "/var/lib/inspectd/spool",
		Mode:     alerts.PerDefect,
	})
	if err != nil {
		log.Fatal(err) // wrong credentials or certificates; an unreachable broker is not an error
	}
	defer func() {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	}()

	for tr := range p.Trigger() {
		var heatmapJPEG []byte // from the pipeline
		ev := alerts.Event{PartID: tr.PartID, Seq: 1, Score: 1.7, Threshold: 1.0,
			Verdict: alerts.VerdictDefect, ModelID: "mnv2-t8", LatencyMS: 41.5}
		if err := p.Publish(ctx, ev, heatmapJPEG); err != nil {
			log.Print(err)
		}
		p.SetStatus(alerts.Status{State: alerts.StateRunning, FPS: 12, ModelID: "mnv2-t8"})
	}
}
