package capture

import (
	"math"
	"time"
)

// sourceClock turns the times a source puts on its frames into wall-clock
// capture times. OpenCV hands frames over without the camera's own clock:
// the nearest it gives is CAP_PROP_POS_MSEC, the frame's time since the
// stream started (from RTP timestamps for RTSP through FFmpeg; a pipeline
// position for GStreamer; nothing usable for HTTP MJPEG). The RTCP/NTP wall
// time of an RTP frame and GVSP timestamps are not reachable through GoCV.
//
// Stamping frames when they are read is wrong exactly when it matters: on
// connecting, FFmpeg probes an RTSP stream for a second or more and then
// hands over everything it buffered in a burst, so a trigger sent during
// that second would be answered with a frame older than itself. So:
//
//   - anchor is the wall time of the source's time 0, estimated as the
//     smallest (arrival - source time) seen: the least-delayed frame. It
//     may rise by at most maxDrift per second of source time so that a
//     camera clock running slow does not drag every stamp into the past.
//   - Until a frame has had to wait for the camera (it arrived at least
//     half its source interval after the previous one), frames are a
//     backlog of unknown age: they are stamped with the time the session
//     opened, the earliest they can have been sent, so they never pass
//     for frames taken after a later trigger.
//   - A capture time is never later than the frame's arrival.
//
// Without usable source times (missing, negative, standing still, going
// backwards, or never once slower than the wall clock within maxBacklog)
// frames are stamped on arrival.
type sourceClock struct {
	opened      time.Time
	first       time.Time // arrival of the first frame
	firstPos    float64
	n           int
	off, live   bool
	anchor      time.Time
	prevPos     float64
	prevArrival time.Time
}

// maxDrift bounds how fast the camera's clock may fall behind the host's
// (1000 ppm; quartz clocks are within 100).
const maxDrift = 1e-3

// maxBacklog: a source whose frames still all come faster than their own
// times say after this long is not a backlog being drained but a source
// whose times mean something else; its frames are stamped on arrival.
const maxBacklog = 5 * time.Second

func newSourceClock(opened time.Time) *sourceClock { return &sourceClock{opened: opened} }

// stamp returns the capture time of a frame that arrived at arrival carrying
// source time posMS (milliseconds since the stream started).
func (c *sourceClock) stamp(arrival time.Time, posMS float64) time.Time {
	if c.off {
		return arrival
	}
	// A source time that stands still past the first few frames (a
	// back end answering 0) says nothing either.
	if math.IsNaN(posMS) || math.IsInf(posMS, 0) || posMS < 0 || posMS > 1e12 || (c.n > 0 && posMS < c.prevPos) ||
		(c.n >= 3 && posMS == c.firstPos) {
		c.off = true
		return arrival
	}
	pos := time.Duration(posMS * float64(time.Millisecond))
	cand := arrival.Add(-pos)
	if c.n == 0 {
		c.anchor, c.first, c.firstPos = cand, arrival, posMS
	} else {
		dPos := posMS - c.prevPos
		if dPos > 0 && arrival.Sub(c.prevArrival) >= time.Duration(dPos*float64(time.Millisecond)/2) {
			c.live = true
		}
		relaxed := c.anchor.Add(time.Duration(dPos * maxDrift * float64(time.Millisecond)))
		c.anchor = relaxed
		if cand.Before(relaxed) {
			c.anchor = cand
		}
	}
	c.n++
	c.prevPos, c.prevArrival = posMS, arrival
	if !c.live {
		if arrival.Sub(c.first) > maxBacklog {
			c.off = true
			return arrival
		}
		return c.opened
	}
	t := c.anchor.Add(pos)
	if t.After(arrival) {
		t = arrival
	}
	if t.Before(c.opened) {
		t = c.opened
	}
	return t
}
