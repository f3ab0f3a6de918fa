// Sending: events go through the spool; sendLoop publishes them in order
// and deletes each once the broker acknowledged it.

package alerts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Publish completes ev (schema, id, time, camera, heatmap fields), writes it
// and the heatmap durably to the spool and returns; sending happens in the
// background. In PerDefect mode a non-defect event is counted and skipped.
// heatmapJPEG may be nil.
func (p *Publisher) Publish(ctx context.Context, ev Event, heatmapJPEG []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	switch ev.Verdict {
	case VerdictOK, VerdictDefect:
		ev.Reason = ""
	case VerdictError:
		if ev.Reason == "" {
			return errors.New("alerts: publishing event: an error verdict needs a reason")
		}
	default:
		return fmt.Errorf("alerts: publishing event: verdict %q, want %q, %q or %q", ev.Verdict, VerdictOK, VerdictDefect, VerdictError)
	}
	// Errors need attention as defects do: PerDefect sends both.
	if p.cfg.Mode == PerDefect && ev.Verdict == VerdictOK {
		p.skipped.Add(1)
		return nil
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"score", ev.Score}, {"threshold", ev.Threshold}, {"latency_ms", ev.LatencyMS}, {"score_ratio", ev.ScoreRatio}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("alerts: publishing event: %s is %v; JSON cannot carry it", f.name, f.v)
		}
	}
	if ev.Camera != "" && ev.Camera != p.cfg.Camera {
		return fmt.Errorf("alerts: publishing event: camera %q, but this publisher is for %q", ev.Camera, p.cfg.Camera)
	}
	if ev.ID == "" {
		ev.ID = NewID()
	} else if err := checkTopicLevels(ev.ID); err != nil || strings.Contains(ev.ID, "/") {
		return fmt.Errorf("alerts: publishing event: id %q must be usable as one topic level", ev.ID)
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Time = ev.Time.UTC()
	ev.Schema = EventSchema
	ev.Camera = p.cfg.Camera
	ev.HeatmapTopic, ev.HeatmapBytes, ev.HeatmapSHA256 = "", 0, ""
	if len(heatmapJPEG) > 0 {
		if len(heatmapJPEG) < 3 || heatmapJPEG[0] != 0xFF || heatmapJPEG[1] != 0xD8 || heatmapJPEG[2] != 0xFF {
			return fmt.Errorf("alerts: publishing event %s: heatmap is not a JPEG (no SOI marker)", ev.ID)
		}
		sum := sha256.Sum256(heatmapJPEG)
		ev.HeatmapTopic = p.topics.HeatmapTopic(ev.ID)
		ev.HeatmapBytes = len(heatmapJPEG)
		ev.HeatmapSHA256 = hex.EncodeToString(sum[:])
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("alerts: encoding event %s: %w", ev.ID, err)
	}

	if _, err := p.spool.append(data, heatmapJPEG); err != nil {
		if errors.Is(err, ErrNotDurable) {
			p.log.Warn("alerts: spool write failed; event kept in memory and retried", "event", ev.ID, "err", err)
		}
		return err
	}
	p.poke(p.wake)
	return nil
}

// SpoolRetryInterval is how often entries that could not be written to the
// spool are written again.
const SpoolRetryInterval = time.Second

// retryLoop writes held entries to the spool once it accepts writes again
// (space freed), not only at the next start.
func (p *Publisher) retryLoop() {
	t := time.NewTicker(SpoolRetryInterval)
	defer t.Stop()
	for {
		select {
		case <-p.runCtx.Done():
			return
		case <-t.C:
		}
		if held, _, _ := p.spool.health(); held == 0 {
			continue
		}
		n, err := p.spool.flush()
		if n > 0 {
			p.poke(p.wake)
		}
		if err == nil {
			p.log.Info("alerts: spool writable again; events held in memory written", "events", n)
		}
	}
}

// sendLoop publishes spool entries in order (each as its heatmap, then its
// event) and deletes an entry only after the broker acknowledged both.
// Up to sendWindow entries are in flight at once: waiting for each PUBACK
// in turn would cap the rate at one entry per two round trips (and, with
// mosquitto's default Nagle setting, one per delayed-ACK timer, ~30/s).
// On any failure everything in flight is sent again from the oldest entry,
// so an entry may arrive more than once, but a later entry never arrives
// before the first copy of an earlier one: one TCP connection keeps order.
func (p *Publisher) sendLoop() {
	defer close(p.sendDone)
	ctx := p.runCtx
	var (
		window []inflight
		c      mqtt.Client // every entry of window was handed to this client
	)
	for {
		if len(window) == 0 {
			e, ok := p.spool.oldest()
			if !ok {
				select {
				case <-p.draining:
					return
				default:
				}
				select {
				case <-p.wake:
				case <-p.draining:
				case <-ctx.Done():
					return
				}
				continue
			}
			if !p.waitConnected(ctx) {
				return
			}
			c = p.client()
			window = append(window, p.start(c, e))
		}
		for len(window) < sendWindow && c.IsConnectionOpen() {
			e, ok := p.spool.after(window[len(window)-1].e.seq)
			if !ok {
				break
			}
			window = append(window, p.start(c, e))
		}

		head := window[0]
		var err error
		for _, tok := range head.toks {
			if err = p.waitAck(ctx, c, tok); err != nil {
				break
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !errors.Is(err, errReconnected) {
				p.setErr(fmt.Errorf("alerts: publishing event %s: %w", head.e.id, err))
			}
			p.log.Debug("alerts: send failed; resending from the oldest entry", "event", head.e.id, "in_flight", len(window), "err", err)
			window = nil
			select {
			case <-ctx.Done():
				return
			case <-time.After(pollInterval):
			}
			continue
		}
		p.published.Add(1) // before the removal, so depth 0 implies the count is final
		if err := p.spool.remove(head.e.seq); err != nil {
			p.log.Error("alerts: spool", "err", err)
		}
		window = window[1:]
	}
}

// sendWindow is the number of spool entries in flight at once.
const sendWindow = 16

type inflight struct {
	e    spoolEntry
	toks []mqtt.Token
}

// start hands one entry to paho: heatmap first, so a subscriber holding the
// event can already have the image it names.
func (p *Publisher) start(c mqtt.Client, e spoolEntry) inflight {
	f := inflight{e: e}
	if len(e.heatmap) > 0 {
		f.toks = append(f.toks, c.Publish(e.hmTopic, p.qos, false, e.heatmap))
	}
	f.toks = append(f.toks, c.Publish(p.topics.Event, p.qos, false, e.event))
	return f
}

var (
	errReconnected = errors.New("connection re-established while waiting for the acknowledgement")
	errAckTimeout  = errors.New("no acknowledgement from the broker in AckTimeout")
)

// waitAck waits for the PUBACK of a message handed to client c. A lost
// connection fails the token; as second guards, a newer connection or
// AckTimeout of connected time also mean "send again" (a duplicate at worst).
func (p *Publisher) waitAck(ctx context.Context, c mqtt.Client, tok mqtt.Token) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var waited time.Duration
	for {
		select {
		case <-tok.Done():
			return tok.Error()
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if p.client() != c {
				return errReconnected
			}
			if c.IsConnectionOpen() {
				waited += pollInterval
				if waited >= p.cfg.AckTimeout {
					return errAckTimeout
				}
			}
		}
	}
}
