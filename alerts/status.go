package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// SetStatus publishes s, retained, on the status topic. Calls closer together
// than StatusInterval are merged (the newest wins); the call never blocks.
// Schema, Camera, SpoolDepth, the event counters and Time are filled in when
// the message is sent.
func (p *Publisher) SetStatus(s Status) {
	p.statusMu.Lock()
	p.pending = &s
	p.statusMu.Unlock()
	p.poke(p.statusWake)
}

func (p *Publisher) statusLoop() {
	ctx := p.runCtx
	var last time.Time
	for {
		select {
		case <-p.statusWake:
		case <-ctx.Done():
			return
		}
		if wait := time.Until(last.Add(p.cfg.StatusInterval)); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			}
		}
		if !p.client().IsConnectionOpen() {
			continue // onConnect pokes again
		}
		p.sendStates(ctx)
		p.statusMu.Lock()
		s := p.pending
		p.pending = nil
		p.statusMu.Unlock()
		if s == nil {
			continue
		}
		last = time.Now()
		if err := p.sendStatus(ctx, *s); err != nil {
			p.log.Warn("alerts: publishing status", "err", err)
			p.statusMu.Lock()
			if p.pending == nil {
				p.pending = s
			}
			p.statusMu.Unlock()
			continue
		}
		p.statusMu.Lock()
		p.lastStatus = s
		p.statusMu.Unlock()
	}
}

func (p *Publisher) sendStatus(ctx context.Context, s Status) error {
	depth, _, dropped, corrupt := p.spool.stats()
	s.Schema = StatusSchema
	s.Camera = p.cfg.Camera
	s.SpoolDepth = depth
	s.EventsPublished = p.published.Load()
	s.EventsDropped = dropped
	s.SpoolCorrupt = corrupt
	s.SpoolHeld, s.SpoolWriteErrors, s.SpoolError = p.spool.health()
	s.Time = time.Now().UTC()
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encoding status: %w", err)
	}
	c := p.client()
	return p.waitAck(ctx, c, c.Publish(p.topics.Status, p.qos, true, data))
}

// Stats is a snapshot of the publisher's counters.
type Stats struct {
	Connected        bool
	SpoolDepth       int
	SpoolBytes       int64
	Published        uint64 // events acknowledged by the broker
	Dropped          uint64 // events dropped, oldest first, because the spool was full
	Corrupt          uint64 // spool entries moved aside as unreadable
	Skipped          uint64 // non-defect events not sent in PerDefect mode
	TriggersDropped  uint64 // triggers refused (payload) or dropped (queue full)
	FeedbackDropped  uint64 // feedback messages not delivered because the channel was full
	CommandsDropped  uint64 // command messages not delivered because the channel was full
	SpoolHeld        int    // events kept in memory because the spool could not be written
	SpoolWriteErrors uint64 // failed spool writes (each retried)
	SpoolError       string // the last spool write error; empty once writes succeed
	LastError        string // last connection or send error; empty once connected again
}

// Stats returns the counters for metrics.
func (p *Publisher) Stats() Stats {
	depth, size, dropped, corrupt := p.spool.stats()
	held, writeErrs, spoolErr := p.spool.health()
	return Stats{
		Connected:        p.client().IsConnectionOpen(),
		SpoolDepth:       depth,
		SpoolBytes:       size,
		Published:        p.published.Load(),
		Dropped:          dropped,
		Corrupt:          corrupt,
		Skipped:          p.skipped.Load(),
		TriggersDropped:  p.trigDropped.Load(),
		FeedbackDropped:  p.fbDropped.Load(),
		CommandsDropped:  p.cmdDropped.Load(),
		SpoolHeld:        held,
		SpoolWriteErrors: writeErrs,
		SpoolError:       spoolErr,
		LastError:        p.LastError(),
	}
}

// SpoolDepth is the number of events waiting for the broker.
func (p *Publisher) SpoolDepth() int { d, _, _, _ := p.spool.stats(); return d }

// Published counts events acknowledged by the broker.
func (p *Publisher) Published() uint64 { return p.published.Load() }

// Dropped counts events dropped because the spool was full.
func (p *Publisher) Dropped() uint64 { _, _, d, _ := p.spool.stats(); return d }
