package alerts

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Close stops accepting events, keeps sending the spool until it is empty or
// ctx is nearly done, publishes "offline" (retained), and disconnects.
// Entries still spooled are sent by the next Publisher on the same SpoolDir;
// Close then returns an error saying how many. With the broker down and a ctx
// without deadline, Close waits for the broker.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	// A last chance for events held in memory to reach the disk.
	if held, _, _ := p.spool.health(); held > 0 {
		if _, err := p.spool.flush(); err == nil {
			p.poke(p.wake)
		}
	}
	close(p.draining)

	// Leave a little of ctx for the offline message and the disconnect.
	flushCtx, cancelFlush := ctx, context.CancelFunc(func() {})
	if dl, ok := ctx.Deadline(); ok {
		reserve := min(time.Second, time.Until(dl)/4)
		flushCtx, cancelFlush = context.WithDeadline(ctx, dl.Add(-reserve))
	}
	select {
	case <-p.sendDone:
	case <-flushCtx.Done():
	}
	cancelFlush()
	p.cancel()
	p.wg.Wait()

	var errs []error
	c := p.client()
	if c.IsConnectionOpen() {
		tok := c.Publish(p.topics.Availability, p.qos, true, availabilityOffline)
		select {
		case <-tok.Done():
			if err := tok.Error(); err != nil {
				errs = append(errs, fmt.Errorf("alerts: publishing offline: %w", err))
			}
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("alerts: publishing offline: %w", ctx.Err()))
		}
	}
	c.Disconnect(250)

	p.trigMu.Lock()
	p.trigClosed = true
	close(p.triggers)
	close(p.feedback)
	close(p.commands)
	p.trigMu.Unlock()

	if held, _, lastErr := p.spool.health(); held > 0 {
		errs = append(errs, fmt.Errorf("alerts: closed with %d events that could not be written to the spool (lost): %s", held, lastErr))
	}
	if depth, _, _, _ := p.spool.stats(); depth > 0 {
		errs = append(errs, fmt.Errorf("alerts: closed with %d events still in spool %s (sent at next start)", depth, p.cfg.SpoolDir))
	}
	p.spool.close()
	return errors.Join(errs...)
}
