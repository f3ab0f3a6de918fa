package alerts

import (
	"bytes"
	"fmt"
	"time"
	"unicode/utf8"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func (p *Publisher) onTrigger(_ mqtt.Client, m mqtt.Message) {
	if m.Retained() {
		// A retained command would re-fire at every reconnect.
		p.log.Warn("alerts: ignoring retained trigger; publish triggers without the retain flag", "topic", m.Topic())
		return
	}
	now := time.Now()
	// Checked before the payload is copied: a 200 MB payload must not
	// become a 200 MB string as well.
	payload := m.Payload()
	if len(payload) > maxTriggerPayload {
		p.dropTrigger(now, fmt.Sprintf("payload of %d bytes, at most %d", len(payload), maxTriggerPayload))
		return
	}
	idb := bytes.TrimSpace(payload)
	if !utf8.Valid(idb) || len(idb) > maxPartIDBytes {
		p.dropTrigger(now, fmt.Sprintf("part id must be UTF-8 of at most %d bytes, got %d bytes", maxPartIDBytes, len(idb)))
		return
	}
	id := string(idb)
	p.trigMu.Lock()
	defer p.trigMu.Unlock()
	if p.trigClosed {
		return
	}
	select {
	case p.triggers <- Trigger{PartID: id, Time: now}:
	default:
		p.dropTrigger(now, "the daemon is not taking triggers fast enough (queue full)")
	}
}

// dropTrigger counts a refused or dropped trigger and logs at most one
// warning per dropLogEvery, with the count since the last one: a flood of
// triggers must not become a flood of log lines.
func (p *Publisher) dropTrigger(now time.Time, why string) {
	n := p.trigDropped.Add(1)
	p.dropLogMu.Lock()
	defer p.dropLogMu.Unlock()
	if !p.dropLogAt.IsZero() && now.Sub(p.dropLogAt) < dropLogEvery {
		return
	}
	p.log.Warn("alerts: trigger dropped", "reason", why, "dropped_since_last_report", n-p.dropLogged, "dropped_total", n)
	p.dropLogAt, p.dropLogged = now, n
}

// Trigger delivers the part ids received on the trigger topic. It is closed
// by Close.
func (p *Publisher) Trigger() <-chan Trigger { return p.triggers }
