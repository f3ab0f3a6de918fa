package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"
)

// liveSource serves cameras, streams, pipelines and video files. One reader
// goroutine per connection ("session") owns the backend and publishes into a
// one-frame slot; a supervisor goroutine restarts sessions that fail or stall.
type liveSource struct {
	lock    *sourceLock // the device node's flock, released by Close
	cfg     Config
	kind    Kind
	target  string
	name    string
	open    opener
	log     *slog.Logger
	limiter *rateLimiter
	// lossless: an unpaced file waits for the consumer instead of
	// dropping frames, so a replay inspects every frame in order.
	lossless bool
	// onDemand: the camera takes a frame only when told to (a registered
	// backend's triggerer); Next fires it (nextOnDemand).
	onDemand bool

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	cur      *session // the session whose frames are accepted
	latest   *Frame   // newest frame not yet returned by Next
	notify   chan struct{}
	terminal error // io.EOF or ErrClosed once no more frames will come
	seq      uint64
	st       Status
	// trig is the open session's camera while it can be fired (onDemand
	// sources), trigSS that session.
	trig   triggerer
	trigSS *session
	// lost is why the last fireable session ended (nil: stopped).
	lost error
	// dropped is why the camera's last frame could not be delivered, and
	// when that was seen (onDemand sources).
	dropped   error
	droppedAt time.Time
}

// session is one open backend and the goroutine reading it.
type session struct {
	stop     chan struct{}
	stopOnce sync.Once
	// ended closes when the session stops reading (err, eof and frames
	// are set by then); gone when its goroutine has also closed the
	// backend and returned.
	ended   chan struct{}
	endOnce sync.Once
	gone    chan struct{}
	// inDriver is the UnixNano time the reader entered Open or Read, 0
	// while it is outside the driver; the supervisor uses it to spot a
	// driver call that hangs.
	inDriver atomic.Int64

	// Set by the reader before ended is closed.
	err    error
	eof    bool
	frames uint64

	// Guarded by liveSource.mu.
	abandoned, exited bool
}

func (ss *session) halt() { ss.stopOnce.Do(func() { close(ss.stop) }) }

func (ss *session) end() { ss.endOnce.Do(func() { close(ss.ended) }) }

func (ss *session) stopped() bool {
	select {
	case <-ss.stop:
		return true
	default:
		return false
	}
}

func (ss *session) enterDriver() { ss.inDriver.Store(time.Now().UnixNano()) }
func (ss *session) leaveDriver() { ss.inDriver.Store(0) }

func openLive(ctx context.Context, cfg Config, kind Kind, target string, open opener, onDemand bool) *liveSource {
	ctx, cancel := context.WithCancel(ctx)
	s := &liveSource{
		cfg:      cfg,
		kind:     kind,
		target:   target,
		name:     redact(cfg.URI),
		open:     open,
		log:      cfg.Logger.With("source", redact(cfg.URI), "kind", kind.String()),
		limiter:  newRateLimiter(cfg.MaxRate),
		lossless: kind == KindFile && !cfg.Pace,
		onDemand: onDemand,
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		notify:   make(chan struct{}),
	}
	s.st = Status{Source: s.name, Kind: kind, State: StateConnecting}
	go s.supervise()
	return s
}

// broadcast wakes everyone waiting on the slot. Caller holds mu.
func (s *liveSource) broadcast() {
	close(s.notify)
	s.notify = make(chan struct{})
}

func (s *liveSource) Next(ctx context.Context) (Frame, error) {
	if err := s.limiter.wait(ctx); err != nil {
		return Frame{}, err
	}
	if s.onDemand {
		return s.nextOnDemand(ctx)
	}
	for {
		s.mu.Lock()
		if s.latest != nil {
			f := *s.latest
			s.latest = nil
			s.st.FramesDelivered++
			s.broadcast() // a lossless reader may be waiting for the slot
			s.mu.Unlock()
			s.limiter.mark()
			return f, nil
		}
		if s.terminal != nil {
			err := s.terminal
			s.mu.Unlock()
			return Frame{}, err
		}
		ch := s.notify
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return Frame{}, ctx.Err()
		case <-ch:
		}
	}
}

func (s *liveSource) Ack(Frame) error { return nil }

func (s *liveSource) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

func (s *liveSource) Close() error {
	s.cancel()
	<-s.done
	s.lock.release()
	return nil
}

// publish hands a grabbed frame, captured at taken, to the slot, taking
// ownership of m. It reports false when the session should stop reading.
func (s *liveSource) publish(ss *session, m gocv.Mat, taken time.Time) bool {
	s.mu.Lock()
	for s.lossless && s.latest != nil && s.cur == ss {
		ch := s.notify
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ss.stop:
		}
		s.mu.Lock()
		if ss.stopped() {
			break
		}
	}
	if s.cur != ss || ss.stopped() {
		s.mu.Unlock()
		m.Close()
		return false
	}
	if s.latest != nil {
		s.latest.Mat.Close()
		s.st.FramesDropped++
	}
	s.seq++
	now := time.Now()
	s.latest = &Frame{Mat: m, Seq: s.seq, Time: taken, Source: s.name}
	s.st.FramesGrabbed++
	s.st.LastFrame = now
	if s.st.State != StateStreaming {
		s.st.State = StateStreaming
		s.st.Backoff = 0
		s.log.Info("capture streaming", "reconnects", s.st.Reconnects)
	}
	s.broadcast()
	s.mu.Unlock()
	return true
}

// read runs one session: open, read until failure, end or stop, close.
func (s *liveSource) read(ss *session) {
	defer func() {
		s.mu.Lock()
		ss.exited = true
		if ss.abandoned {
			s.st.StuckReaders--
		}
		s.mu.Unlock()
		ss.end()
		close(ss.gone)
	}()
	started := time.Now()
	ss.enterDriver()
	c, err := s.open(s.kind, s.target)
	ss.leaveDriver()
	if err != nil {
		ss.err = err
		return
	}
	// Closing happens here even for an abandoned session, once the hung
	// call finally returns: nobody else may touch the backend. The end is
	// reported first, so a failure shows at once even when closing is
	// slow (Aravis takes 13 s to let go of a camera that vanished); the
	// supervisor waits for the close only up to the stall timeout.
	defer func() {
		ss.end()
		c.Close()
	}()
	if s.onDemand {
		if !s.armed(ss, c) {
			return
		}
		defer s.disarm(ss)
	}
	timer, hasTime := c.(frameTimer)

	var interval time.Duration
	if s.kind == KindFile && s.cfg.Pace {
		fps := s.cfg.PaceFPS
		if fps <= 0 {
			fps = c.FPS()
		}
		if fps <= 0 || fps > 1000 {
			fps = fallbackFPS
		}
		interval = time.Duration(float64(time.Second) / fps)
	}
	// Cameras, streams and pipelines stamp frames with the source's own
	// time where it has one; a video file is a replay, stamped when read.
	var clock *sourceClock
	pr, hasPos := c.(posReader)
	if hasPos && s.kind != KindFile {
		clock = newSourceClock(started)
	}
	due := time.Now()
	lastGood := time.Now()
	for !ss.stopped() {
		m := gocv.NewMat()
		ss.enterDriver()
		ok := c.Read(&m)
		ss.leaveDriver()
		if !ok || m.Empty() {
			m.Close()
			if s.kind == KindFile {
				ss.eof = true
				return
			}
			if !ok {
				ss.err = errors.New("backend read failed")
				if er, has := c.(errReporter); has && er.Err() != nil {
					ss.err = er.Err()
				}
				return
			}
			// A camera waiting for its trigger has nothing to say; it
			// checks itself that it is still there (aravis.go).
			if s.onDemand {
				if dr, has := c.(dropReporter); has {
					if err := dr.Dropped(); err != nil {
						s.mu.Lock()
						s.dropped, s.droppedAt = err, time.Now()
						s.st.FramesDropped++
						s.broadcast()
						s.mu.Unlock()
					}
				}
				continue
			}
			// Some backends return success with no image while a
			// camera hiccups; give it until the stall timeout.
			if time.Since(lastGood) > s.cfg.StallTimeout {
				ss.err = fmt.Errorf("no image for %v (backend returns empty frames)", s.cfg.StallTimeout)
				return
			}
			if !sleepOrStop(ss, 10*time.Millisecond) {
				return
			}
			continue
		}
		lastGood = time.Now()
		taken := lastGood
		if hasTime {
			taken = timer.FrameTime()
		} else if clock != nil {
			// A property query is a driver call too, and may hang
			// like a read.
			ss.enterDriver()
			pos := pr.PosMsec()
			ss.leaveDriver()
			taken = clock.stamp(lastGood, pos)
		}
		ss.frames++
		if !s.publish(ss, m, taken) {
			return
		}
		if interval > 0 {
			due = due.Add(interval)
			// After a hiccup start a fresh schedule rather than
			// bursting to catch up: a camera does not replay the past.
			if d := time.Until(due); d < -interval {
				due = time.Now()
			} else if !sleepOrStop(ss, d) {
				return
			}
		}
	}
}

func sleepOrStop(ss *session, d time.Duration) bool {
	if d <= 0 {
		return !ss.stopped()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ss.stop:
		return false
	case <-t.C:
		return true
	}
}

// supervise keeps a session running until the context ends.
func (s *liveSource) supervise() {
	defer close(s.done)
	defer s.shutdown()
	bo := backoff{min: s.cfg.BackoffMin, max: s.cfg.BackoffMax}
	for s.ctx.Err() == nil {
		ss := &session{stop: make(chan struct{}), ended: make(chan struct{}), gone: make(chan struct{})}
		s.mu.Lock()
		s.cur = ss
		s.mu.Unlock()
		go s.read(ss)

		stalled := s.watch(ss)
		if s.ctx.Err() != nil {
			s.retire(ss, min(s.cfg.StallTimeout, 2*time.Second))
			return
		}
		var failure error
		switch {
		case stalled:
			s.retire(ss, 0)
			failure = fmt.Errorf("stalled: no frame for %v", s.cfg.StallTimeout)
		case ss.err != nil:
			failure = ss.err
		case ss.eof && ss.frames == 0:
			failure = errors.New("video file yielded no frames")
		case ss.eof && s.cfg.Loop:
			s.retire(ss, s.cfg.StallTimeout)
			continue
		case ss.eof:
			s.retire(ss, s.cfg.StallTimeout)
			s.end()
			<-s.ctx.Done()
			return
		}
		if ss.frames > 0 {
			bo.reset()
		}
		wait := bo.next()
		s.mu.Lock()
		s.cur = nil
		s.st.State = StateReconnecting
		s.st.LastError = failure.Error()
		s.st.LastErrorTime = time.Now()
		s.st.Backoff = wait
		s.st.Reconnects++
		s.mu.Unlock()
		s.log.Warn("capture failed; reopening", "err", failure, "backoff", wait)
		// A backend still closing holds the device; a new one would
		// only fail to open it. (A stalled one is abandoned already.)
		if !stalled {
			s.retire(ss, s.cfg.StallTimeout)
		}
		if !sleepCtx(s.ctx, wait) {
			return
		}
	}
}

// watch waits for the session to end, the context to end, or a stall: a
// driver call that has not returned within the stall timeout.
func (s *liveSource) watch(ss *session) (stalled bool) {
	tick := time.NewTicker(max(min(s.cfg.StallTimeout/5, time.Second), time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ss.ended:
			return false
		case <-s.ctx.Done():
			return false
		case <-tick.C:
			if t := ss.inDriver.Load(); t != 0 && time.Since(time.Unix(0, t)) > s.cfg.StallTimeout {
				return true
			}
		}
	}
}

// retire stops a session, waiting up to grace for it to exit. A reader stuck
// in the driver cannot be interrupted from Go, so it is abandoned: it closes
// its backend and exits whenever the driver returns.
func (s *liveSource) retire(ss *session, grace time.Duration) {
	ss.halt()
	if grace > 0 {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-ss.gone:
		case <-t.C:
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == ss {
		s.cur = nil
	}
	if !ss.exited && !ss.abandoned {
		ss.abandoned = true
		s.st.StuckReaders++
		s.log.Warn("capture reader stuck in driver; abandoned", "stuck", s.st.StuckReaders)
	}
}

// end marks a video file as finished: Next drains the last frame, then
// returns io.EOF.
func (s *liveSource) end() {
	s.mu.Lock()
	s.cur = nil
	s.terminal = io.EOF
	s.st.State = StateEnded
	s.broadcast()
	s.mu.Unlock()
	s.log.Info("video file ended")
}

// shutdown frees the slot and makes Next return ErrClosed.
func (s *liveSource) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = nil
	if s.latest != nil {
		s.latest.Mat.Close()
		s.latest = nil
	}
	s.terminal = ErrClosed
	s.st.State = StateClosed
	s.broadcast()
}

// armed makes the session's camera the one Next fires, and reports the
// source streaming (ready for triggers); false when the session is no
// longer current.
func (s *liveSource) armed(ss *session, c capturer) bool {
	t, ok := c.(triggerer)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok {
		ss.err = errors.New("backend cannot be triggered")
		return false
	}
	if s.cur != ss || ss.stopped() {
		return false
	}
	s.trig, s.trigSS = t, ss
	if s.st.State != StateStreaming {
		s.st.State = StateStreaming
		s.st.Backoff = 0
		s.log.Info("camera ready for triggers", "reconnects", s.st.Reconnects)
	}
	s.broadcast()
	return true
}

// disarm forgets the session's camera before it is closed.
func (s *liveSource) disarm(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.trigSS == ss {
		s.trig, s.trigSS, s.lost = nil, nil, ss.err
		s.broadcast()
	}
}

// nextOnDemand fires the camera once and returns the frame taken for it.
// It waits (within ctx) for a camera that can be fired; a frame already in
// the slot, or one taken before the trigger was sent, is never returned.
func (s *liveSource) nextOnDemand(ctx context.Context) (Frame, error) {
	var (
		t  triggerer
		ss *session
	)
	for {
		s.mu.Lock()
		if s.terminal != nil {
			err := s.terminal
			s.mu.Unlock()
			return Frame{}, err
		}
		// A session the supervisor gave up on (stuck in the driver) is not
		// fired, even before its reader has returned.
		if s.trig != nil && s.trigSS == s.cur {
			t, ss = s.trig, s.trigSS
			if s.latest != nil { // the answer to an earlier Next that gave up
				s.latest.Mat.Close()
				s.latest = nil
				s.st.FramesDropped++
			}
			s.mu.Unlock()
			break
		}
		ch, lastErr := s.notify, s.st.LastError
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			if lastErr != "" {
				return Frame{}, fmt.Errorf("capture: camera not ready to trigger (last error: %s): %w", lastErr, ctx.Err())
			}
			return Frame{}, fmt.Errorf("capture: camera not ready to trigger: %w", ctx.Err())
		case <-ch:
		}
	}
	// Firing is a round trip to the camera, bounded by the driver's own
	// timeouts (seconds for a camera that vanished) but not by ctx: wait
	// for it within ctx, and let it finish on its own otherwise.
	type fire struct {
		at  time.Time
		err error
	}
	done := make(chan fire, 1)
	go func() {
		at, err := t.Trigger()
		done <- fire{at, err}
	}()
	var fired time.Time
	select {
	case r := <-done:
		if r.err != nil {
			return Frame{}, fmt.Errorf("capture: software trigger: %w", r.err)
		}
		fired = r.at
	case <-ctx.Done():
		return Frame{}, fmt.Errorf("capture: software trigger not acknowledged by the camera: %w", ctx.Err())
	}
	for {
		s.mu.Lock()
		if s.latest != nil {
			f := *s.latest
			s.latest = nil
			if f.Time.Before(fired) {
				s.st.FramesDropped++
				s.mu.Unlock()
				f.Mat.Close()
				continue
			}
			s.st.FramesDelivered++
			s.mu.Unlock()
			s.limiter.mark()
			return f, nil
		}
		if s.terminal != nil {
			err := s.terminal
			s.mu.Unlock()
			return Frame{}, err
		}
		if s.dropped != nil && !s.droppedAt.Before(fired) {
			err := s.dropped
			s.mu.Unlock()
			return Frame{}, fmt.Errorf("capture: the camera's frame for the software trigger was lost: %w", err)
		}
		if s.trigSS != ss || s.cur != ss {
			lost := s.lost
			s.mu.Unlock()
			if lost == nil {
				lost = errors.New("reader stopped")
			}
			return Frame{}, fmt.Errorf("capture: camera lost while waiting for the frame of the trigger sent at %s: %w", fired.Format("15:04:05.000"), lost)
		}
		ch := s.notify
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return Frame{}, fmt.Errorf("capture: no frame within %v of the software trigger: %w", time.Since(fired).Round(time.Millisecond), ctx.Err())
		case <-ch:
		}
	}
}
