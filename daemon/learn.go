package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/pipeline"
)

// rejectedFrames keeps the frames of the most recently rejected parts, PNG
// encoded, so that an operator's "good" on one of them can teach the model.
// Bounded by count; the oldest goes first.
type rejectedFrames struct {
	mu    sync.Mutex
	limit int
	png   map[string][]byte
	order []string
}

func newRejectedFrames(limit int) *rejectedFrames {
	return &rejectedFrames{limit: limit, png: map[string][]byte{}}
}

func (r *rejectedFrames) put(eventID string, png []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.png[eventID]; ok {
		return
	}
	for len(r.order) >= r.limit {
		delete(r.png, r.order[0])
		r.order = r.order[1:]
	}
	r.png[eventID] = png
	r.order = append(r.order, eventID)
}

// take removes and returns an event's frame.
func (r *rejectedFrames) take(eventID string) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.png[eventID]
	if ok {
		delete(r.png, eventID)
		for i, id := range r.order {
			if id == eventID {
				r.order = append(r.order[:i], r.order[i+1:]...)
				break
			}
		}
	}
	return b, ok
}

// keepRejected stores a rejected part's frame for learning (when on).
func (d *Daemon) keepRejected(eventID string, frame gocv.Mat) {
	if d.rejected == nil {
		return
	}
	png, err := imageops.EncodePNG(frame)
	if err != nil {
		d.log.Warn("keeping a rejected part's frame for feedback", "event_id", eventID, "err", err)
		return
	}
	d.rejected.put(eventID, png)
}

// Learning results (the label of inspectd_learned_total).
const (
	learnAdded   = "added"   // the part's new patches joined the bank; new model version
	learnCovered = "covered" // nothing new in it; the model is unchanged
	learnNoFrame = "no_frame"
	learnRefused = "refused" // the method cannot learn, or the bank is full
	learnFailed  = "failed"  // reading, writing or reloading the model failed
)

// learnGood adds a confirmed-good rejected part to the model in force: a new
// version of the model file (the previous kept beside it), then a reload
// through the usual path, so status, metrics and the operating point see a
// new model like any other. It runs on the feedback goroutine: feedback is
// rare, and one at a time keeps the versions in order.
func (d *Daemon) learnGood(ctx context.Context, eventID string) string {
	png, ok := d.rejected.take(eventID)
	if !ok {
		return learnNoFrame
	}
	img, err := imageops.Decode(png)
	if err != nil {
		d.log.Warn("learning a confirmed-good part: decoding its frame", "event_id", eventID, "err", err)
		return learnFailed
	}
	defer img.Close()
	a := d.cur.Load()
	m, err := model.Load(d.cfg.Model)
	if err != nil {
		d.log.Warn("learning a confirmed-good part: reading the model", "event_id", eventID, "err", err)
		return learnFailed
	}
	if m.Manifest.ID != a.Manifest().ID {
		// The file changed under the running daemon (a new calibration
		// waiting for a reload): that file is not this one's to extend.
		d.log.Warn("learning a confirmed-good part: the model file is not the model in force; left alone", "event_id", eventID,
			"file", m.Manifest.ID, "running", a.Manifest().ID)
		return learnRefused
	}
	man, tensors, added, err := a.AddGood(ctx, m, []gocv.Mat{img})
	switch {
	case errors.Is(err, pipeline.ErrCannotLearn):
		return learnRefused
	case err != nil:
		d.log.Warn("learning a confirmed-good part", "event_id", eventID, "err", err)
		return learnRefused
	case added == 0:
		return learnCovered
	}
	if err := model.SaveVersion(d.cfg.Model, man, tensors); err != nil {
		d.log.Error("learning a confirmed-good part: writing the new model version", "event_id", eventID, "err", err)
		return learnFailed
	}
	if err := d.Reload(); err != nil {
		d.log.Error("learning a confirmed-good part: reloading the new version", "event_id", eventID, "err", fmt.Errorf("%w (the previous version is %s%s)", err, d.cfg.Model, model.PrevSuffix))
		return learnFailed
	}
	d.log.Info("confirmed-good part learnt: new model version", "event_id", eventID, "patches", added,
		"model", d.cur.Load().Manifest().ID, "previous", m.Manifest.ID, "rollback", d.cfg.Model+model.PrevSuffix)
	return learnAdded
}
