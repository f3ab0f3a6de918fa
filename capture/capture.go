// Package capture delivers frames from cameras, video files, network streams,
// GStreamer pipelines and hot folders of image files, through GoCV.
//
// A source never gives up on its own: a camera that fails, stalls or vanishes
// is closed and reopened with capped exponential backoff while Status reports
// what is happening. Only Close, or cancelling the context given to Open,
// stops it. Live sources keep only the newest frame, so a slow consumer
// always inspects what is in front of the camera now rather than a backlog.
// A hot folder instead delivers every file exactly once, and a file counts
// as done only when the consumer acknowledges it.
//
// Region-of-interest cropping belongs to the pipeline, not here.
package capture

import (
	"context"
	"errors"
	"sync"
	"time"

	"gocv.io/x/gocv"
)

// ErrClosed is returned by Next after Close or after the context given to
// Open is cancelled.
var ErrClosed = errors.New("capture: source closed")

// Frame is one image. The receiver owns Mat and must Close it.
type Frame struct {
	Mat gocv.Mat
	// Seq counts frames grabbed by this source, from 1. Gaps show frames
	// that were superseded before anyone asked for them.
	Seq uint64
	// Time is when the frame was taken, as near as can be told: for a
	// camera, stream or pipeline the source's own frame times mapped onto
	// the wall clock where it has them (see sourceClock), else when it
	// was read; for a video file when it was read; for a hot folder the
	// file's modification time.
	Time time.Time
	// PartID names the part: the file name for a hot folder, empty for
	// live sources (use Seq there).
	PartID string
	// Source is the URI the frame came from, with any password removed.
	Source string
	// Size is the hot-folder file's size in bytes (0 for live sources):
	// with PartID and Time it identifies the part across restarts.
	Size int64
}

// Source yields frames until closed.
type Source interface {
	// Next returns the newest frame not yet returned, waiting for one.
	// A video file without Loop returns io.EOF after its last frame.
	Next(ctx context.Context) (Frame, error)
	// Ack marks a frame as durably handled. A hot folder moves the file to
	// done/ so it is never inspected again, even after a restart; files
	// not acknowledged are delivered again by the next Source on the
	// folder. Live sources need no acknowledgement and return nil.
	Ack(f Frame) error
	// Status is a snapshot of the source's health.
	Status() Status
	// Close stops the source and releases the device. It is safe to call
	// more than once.
	Close() error
}

// Open validates cfg and starts the source it names. It does not wait for a
// camera to answer: a missing or failing camera is retried in the
// background and reported through Status, so only bad configuration makes
// Open fail. Cancelling ctx stops the source as Close does.
func Open(ctx context.Context, cfg Config) (Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	kind, target, err := ParseURI(cfg.URI)
	if err != nil {
		return nil, err
	}
	lock, err := lockSource(kind, target)
	if err != nil {
		return nil, err
	}
	if kind == KindHotFolder {
		h, err := openHotFolder(ctx, cfg, target)
		if err != nil {
			lock.release()
			return nil, err
		}
		h.lock = lock
		return h, nil
	}
	open := func(k Kind, t string) (capturer, error) { return openGoCV(k, t, cfg.StallTimeout) }
	var onDemand bool
	if b := backendFor(kind, target); b != nil {
		open = func(_ Kind, t string) (capturer, error) { return b.open(cfg, t) }
		onDemand = b.onDemand
	}
	s := openLive(ctx, cfg, kind, target, open, onDemand)
	s.lock = lock
	return s, nil
}

// FiresOnNext reports whether src takes a frame only when asked: each Next
// fires the camera once (a gige: camera with trigger=software) and returns
// the frame taken for it, never one taken before the call.
func FiresOnNext(src Source) bool {
	s, ok := src.(*liveSource)
	return ok && s.onDemand
}

// State is where a source is in its life.
type State string

const (
	StateConnecting   State = "connecting"   // first open in progress
	StateStreaming    State = "streaming"    // frames are arriving
	StateReconnecting State = "reconnecting" // waiting to reopen after a failure
	StateEnded        State = "ended"        // video file finished (no Loop)
	StateClosed       State = "closed"       // Close called or context cancelled
)

// Status is a snapshot of a source's health, for logs and the health topic.
type Status struct {
	Source string
	Kind   Kind
	State  State
	// LastError is the most recent failure, kept after recovery so an
	// operator can see why the last reconnect happened.
	LastError     string
	LastErrorTime time.Time
	// FramesGrabbed counts frames read from the backend; FramesDelivered
	// those returned by Next; FramesDropped those superseded unseen.
	FramesGrabbed   uint64
	FramesDelivered uint64
	FramesDropped   uint64
	// Failed counts hot-folder files moved to failed/.
	Failed uint64
	// Reconnects counts reopen attempts after a failure or stall.
	Reconnects uint64
	// Backoff is the wait before the next reopen attempt while reconnecting.
	Backoff   time.Duration
	LastFrame time.Time
	// StuckReaders counts abandoned backend reads that have not returned;
	// a growing number means the driver hangs rather than fails.
	StuckReaders int
}

// rateLimiter spaces the frames Next returns at least 1/rate apart.
type rateLimiter struct {
	mu    sync.Mutex
	every time.Duration
	last  time.Time
}

func newRateLimiter(rate float64) *rateLimiter {
	if rate <= 0 {
		return &rateLimiter{}
	}
	return &rateLimiter{every: time.Duration(float64(time.Second) / rate)}
}

// wait blocks until the next frame may be returned.
func (r *rateLimiter) wait(ctx context.Context) error {
	if r.every == 0 {
		return nil
	}
	r.mu.Lock()
	next := r.last.Add(r.every)
	r.mu.Unlock()
	if d := time.Until(next); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// mark records that a frame was returned now.
func (r *rateLimiter) mark() {
	if r.every == 0 {
		return
	}
	r.mu.Lock()
	r.last = time.Now()
	r.mu.Unlock()
}

// backoff doubles a wait from min up to max.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

// sleepCtx waits d or until ctx ends, reporting whether the full wait passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
