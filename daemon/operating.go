package daemon

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/inspectd/inspectd/alerts"
	"github.com/inspectd/inspectd/evalstats"
	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/operating"
	"github.com/inspectd/inspectd/pipeline"
)

const (
	// maxStateBytes bounds the state file read at start (a window of
	// 100000 scores is about 2 MB of JSON).
	maxStateBytes = 16 << 20
	// maxEvidence bounds the confirmed-defect evidence file (lines kept).
	maxEvidence = 1000
	// maxEvidenceBytes bounds the evidence file read at start.
	maxEvidenceBytes = 8 << 20
)

// active is the model in use with its operating point: they change together
// at a reload, so an inspection never mixes one model's score with another's
// threshold.
type active struct {
	*pipeline.Loaded
	op  *operating.Refiner
	key string // the operating state's key (model and settings)
}

// newOperating sets up the operating point of a loaded model: the starting
// threshold (INSPECTD_THRESHOLD, else INSPECTD_FRR on the model's good
// scores with its tail method, else the model's), refinement settings, and
// the state saved by an earlier run of the same model and settings. A
// reload of the model in use (prev) keeps prev's operating point as it is.
func (d *Daemon) newOperating(l *pipeline.Loaded, prev *active) (*active, error) {
	man := l.Manifest()
	start, src, target := man.Threshold.Value, operating.SourceCalibrated, man.Threshold.TargetFRR
	if !(target > 0 && target < 0.5) {
		target = operating.DefaultTargetFRR
	}
	method, err := evalstats.ParseThresholdMethod(man.Threshold.Method)
	if err != nil {
		d.log.Warn("model's threshold method unknown here; INSPECTD_FRR and refinement use the automatic choice", "model", man.ID, "err", err)
		method = evalstats.MethodAuto
	}
	switch {
	case d.cfg.Threshold > 0:
		start, src = d.cfg.Threshold, operating.SourceOverride
	case d.cfg.FRR > 0:
		v, err := evalstats.ThresholdForFRR(man.Training.GoodScores, d.cfg.FRR, method)
		if err != nil {
			return nil, fmt.Errorf("INSPECTD_FRR=%g with model %s (%d out-of-sample good scores): %w", d.cfg.FRR, man.ID, len(man.Training.GoodScores), err)
		}
		start, src, target = v, operating.SourceFRR, d.cfg.FRR
	}
	minFactor := cmp.Or(d.cfg.RefineMin, operating.MinFactorFor(man.Threshold.Method))
	refine := d.cfg.Refining(minFactor)
	op, err := operating.New(operating.Config{Start: start, Source: src, TargetFRR: target, Refine: refine,
		After: d.cfg.RefineAfter, Window: d.cfg.RefineWindow, MinFactor: minFactor, MaxFactor: d.cfg.RefineMax,
		CalibrationGood: man.Training.GoodScores, TailMethod: method, DriftWindow: d.cfg.DriftWindow, DriftLimit: d.cfg.DriftLimit,
		DefectRate: d.cfg.DefectRate, RejectWindow: d.cfg.RejectWindow, Now: time.Now})
	if err != nil {
		return nil, fmt.Errorf("model %s: operating point: %w", man.ID, err)
	}
	a := &active{Loaded: l, op: op, key: op.Key(man.ID)}
	if prev != nil && prev.key == a.key {
		a.op = prev.op
	} else {
		d.restoreState(a)
	}
	t, s := op.Threshold()
	l.SetThreshold(t)
	d.log.Info("threshold in force", "model", man.ID, "threshold", t, "source", s, "target_frr", target,
		"refine", refine, "bounds", []float64{op.Snapshot().Lower, op.Snapshot().Upper})
	return a, nil
}

func (d *Daemon) statePath() string {
	return filepath.Join(d.cfg.StateDir, "refine-"+d.cfg.Camera+".json")
}

func (d *Daemon) evidencePath() string {
	return filepath.Join(d.cfg.StateDir, "defects-"+d.cfg.Camera+".jsonl")
}

// restoreState takes the saved operating state when it belongs to this
// model and settings; anything else starts afresh with a log line saying why.
func (d *Daemon) restoreState(a *active) {
	path := d.statePath()
	data, err := readBounded(path, maxStateBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err == nil {
		var st operating.State
		if err = json.Unmarshal(data, &st); err == nil {
			err = a.op.Restore(st, a.key)
		}
	}
	switch {
	case errors.Is(err, operating.ErrStateMismatch):
		d.log.Info("saved operating state is for another model or settings: starting afresh", "file", path)
	case err != nil:
		d.met.errors.WithLabelValues("state").Inc()
		d.log.Warn("saved operating state unusable: starting afresh", "file", path, "err", err)
	default:
		snap := a.op.Snapshot()
		d.log.Info("operating state restored", "file", path, "threshold", snap.Threshold, "source", snap.Source, "inspections", snap.Observed)
		if snap.Source == operating.SourceRefined {
			d.met.thresholdChanges.WithLabelValues(operating.ReasonRestored).Inc()
		}
	}
}

// readBounded reads a file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// saveState writes the operating state atomically. Saves are serialised
// and each takes the newest state, so an older one never lands last.
func (d *Daemon) saveState(a *active) {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	if d.cur.Load() != a {
		return // a reload replaced it; the new model's state is what matters
	}
	data, err := json.Marshal(a.op.State(a.key))
	if err == nil {
		err = imageops.WriteFileAtomic(d.statePath(), data)
	}
	if err != nil {
		d.met.errors.WithLabelValues("state").Inc()
		d.log.Warn("saving operating state", "err", err)
	}
}

// observe records a decided score with the operating point and says every
// change: log, metrics, status, state file.
func (d *Daemon) observe(a *active, score float64, rejected bool) {
	c, changed := a.op.Observe(score, rejected)
	if changed {
		d.thresholdChanged(a, c)
	}
	d.updateOperatingMetrics(a)
	if rj := a.op.Rejects(); rj.High != d.rejectsHigh.Swap(rj.High) {
		if rj.High {
			d.log.Warn("rejecting more parts than the threshold and the line's defect rate explain: review the rejects (feedback topic) or recalibrate with good parts like these",
				"rejected", rj.Rejected, "of", rj.Decisions, "expected_at_most", rj.Expected)
		} else {
			d.log.Info("reject rate back within expectation", "rejected", rj.Rejected, "of", rj.Decisions)
		}
		d.publishStatus()
	}
	dr := a.op.Drift()
	if dr.Drifting != d.drifting.Swap(dr.Drifting) {
		if dr.Drifting {
			d.log.Warn("score drift: recent scores moved away from their reference; refinement holds the threshold",
				"drift", dr.Score, "reference", dr.Reference, "limit", d.cfg.DriftLimit)
		} else {
			d.log.Info("score drift over", "drift", dr.Score, "reference", dr.Reference)
		}
		d.publishStatus()
	}
	if changed || d.sinceSave.Add(1) >= uint64(max(d.cfg.RefineAfter/4, 1)) {
		d.sinceSave.Store(0)
		d.saveState(a)
	}
}

func (d *Daemon) thresholdChanged(a *active, c operating.Change) {
	d.met.thresholdChanges.WithLabelValues(c.Reason).Inc()
	d.log.Info("threshold changed", "from", c.From, "to", c.To, "reason", c.Reason, "inspections", c.Observed,
		"predicted_frr", c.PredictedFRR, "model", a.Manifest().ID)
	d.updateOperatingMetrics(a)
	d.publishStatus()
}

func (d *Daemon) updateOperatingMetrics(a *active) {
	t, src := d.thresholdInForce(a)
	d.met.setThreshold(t, src)
	d.met.drift.Set(a.op.Drift().Score)
	rj := a.op.Rejects()
	d.met.rejectRate.Set(rj.Rate)
	d.met.rejectsHigh.Set(b2f(rj.High))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// operatingStatus fills the status fields of the operating point.
func operatingStatus(st *alerts.Status, a *active) {
	s := a.op.Snapshot()
	st.Threshold, st.ThresholdSource = s.Threshold, string(s.Source)
	st.Drift, st.ScoreDrift = s.Drift.Drifting, s.Drift.Score
	st.RejectsHigh = s.Rejects.High
	o := &alerts.Operating{TargetFRR: s.TargetFRR, Bounds: [2]float64{s.Lower, s.Upper}, Refine: s.Refine,
		Inspections: s.Observed, ConfirmedGood: s.ConfirmedGood, DriftReference: s.Drift.Reference,
		RecentRejects: s.Rejects.Rejected, RecentDecisions: s.Rejects.Decisions, ExpectedRejectRate: s.Rejects.Expected}
	if s.Fit != nil {
		p := s.PredictedFRR
		o.PredictedFRR = &p
	}
	if c := s.LastChange; c != nil {
		o.LastChange = &alerts.ThresholdChange{From: c.From, To: c.To, Reason: c.Reason, Inspections: c.Observed, Time: c.Time}
	}
	st.Operating = o
}

// record is what the daemon remembers of a recent event for feedback.
type record struct {
	EventID   string         `json:"event_id"`
	PartID    string         `json:"part_id,omitempty"`
	Seq       uint64         `json:"seq"`
	Time      time.Time      `json:"time"`
	Score     float64        `json:"score"`
	Threshold float64        `json:"threshold"`
	Verdict   alerts.Verdict `json:"verdict"`
	ModelID   string         `json:"model_id"`
	key       string         // operating key at decision time
	labeled   string         // feedback already taken
}

// recent is a bounded ring of events, found by event id or part id (the
// newest event with that part id).
type recent struct {
	mu     sync.Mutex
	ring   []record
	next   int
	byID   map[string]int
	byPart map[string]int
}

func newRecent(n int) *recent {
	return &recent{ring: make([]record, 0, min(n, 4096)), byID: map[string]int{}, byPart: map[string]int{}}
}

func (r *recent) add(rec record, capacity int) {
	if capacity <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i := len(r.ring)
	if i < capacity {
		r.ring = append(r.ring, rec)
	} else {
		i = r.next
		old := r.ring[i]
		if r.byID[old.EventID] == i {
			delete(r.byID, old.EventID)
		}
		if j, ok := r.byPart[old.PartID]; ok && j == i {
			delete(r.byPart, old.PartID)
		}
		r.ring[i] = rec
		r.next = (r.next + 1) % capacity
	}
	r.byID[rec.EventID] = i
	if rec.PartID != "" {
		r.byPart[rec.PartID] = i
	}
}

// label finds the event and marks it labelled; it returns the record as it
// was before (labeled says whether feedback had been taken already).
func (r *recent) label(eventID, partID, label string) (record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.byID[eventID]
	if !ok || eventID == "" {
		if i, ok = r.byPart[partID]; !ok || partID == "" {
			return record{}, false
		}
	}
	rec := r.ring[i]
	if rec.labeled == "" {
		r.ring[i].labeled = label
	}
	return rec, true
}

// Feedback results (the label of inspectd_feedback_total).
const (
	fbFalseReject = "false_reject"  // confirmed good, had been rejected
	fbGood        = "good"          // confirmed good, had been accepted
	fbDefect      = "defect"        // confirmed defect, had been rejected
	fbMissed      = "missed_defect" // confirmed defect, had been accepted
	fbUnknown     = "unknown_event" // no remembered event with that id
	fbDuplicate   = "duplicate"     // the event already had feedback
	fbInvalid     = "invalid"       // refused message
)

// learnTimeout bounds learning one confirmed-good part (one backbone run,
// a model file written and reloaded).
const learnTimeout = 2 * time.Minute

// feedbackLoop takes operator verdicts until the publisher closes.
func (d *Daemon) feedbackLoop(ch <-chan alerts.Feedback) {
	var lastWarn time.Time
	warn := func(msg string, args ...any) {
		// A flood of bad messages must not flood the journal.
		if time.Since(lastWarn) > 10*time.Second {
			lastWarn = time.Now()
			d.log.Warn(msg, args...)
		}
	}
	for fb := range ch {
		res := d.handleFeedback(fb)
		d.met.feedback.WithLabelValues(res).Inc()
		switch res {
		case fbInvalid:
			warn("feedback refused (further ones for 10 s are only counted)", "err", fb.Err)
		case fbUnknown:
			warn("feedback for an event not remembered (INSPECTD_FEEDBACK_MEMORY recent events are)", "event_id", fb.EventID, "part_id", fb.PartID)
		case fbDuplicate:
			warn("feedback for an event that already had some; the first one stands", "event_id", fb.EventID, "part_id", fb.PartID)
		}
	}
}

func (d *Daemon) handleFeedback(fb alerts.Feedback) string {
	if fb.Err != nil {
		return fbInvalid
	}
	rec, ok := d.recent.label(fb.EventID, fb.PartID, fb.Label)
	switch {
	case !ok:
		return fbUnknown
	case rec.labeled != "":
		return fbDuplicate
	}
	a := d.cur.Load()
	sameModel := rec.key == a.key
	rejected := rec.Verdict == alerts.VerdictDefect
	d.log.Info("operator feedback", "event_id", rec.EventID, "part_id", rec.PartID, "label", fb.Label,
		"verdict", rec.Verdict, "score", rec.Score, "threshold", rec.Threshold)
	if fb.Label == alerts.LabelGood {
		if sameModel {
			if c, changed := a.op.ConfirmGood(rec.Score); changed {
				d.thresholdChanged(a, c)
			}
			d.saveState(a)
		}
		if rejected {
			if sameModel && d.rejected != nil {
				ctx, cancel := context.WithTimeout(context.Background(), learnTimeout)
				res := d.learnGood(ctx, rec.EventID)
				cancel()
				d.met.learned.WithLabelValues(res).Inc()
			}
			return fbFalseReject
		}
		return fbGood
	}
	if sameModel && a.op.ConfirmDefect(rec.Score) {
		d.saveState(a)
	}
	d.keepEvidence(rec)
	if rejected {
		return fbDefect
	}
	return fbMissed
}

// keepEvidence appends a confirmed defect to the bounded evidence file
// (the newest maxEvidence lines; rewritten atomically). Evidence is kept
// for thresholds and audits, never trained on.
func (d *Daemon) keepEvidence(rec record) {
	d.evidenceMu.Lock()
	defer d.evidenceMu.Unlock()
	if d.evidence == nil {
		d.evidence = loadEvidence(d.evidencePath(), d.log.Warn)
	}
	line, err := json.Marshal(struct {
		record
		Label  string    `json:"label"`
		Camera string    `json:"camera"`
		Noted  time.Time `json:"noted"`
	}{rec, alerts.LabelDefect, d.cfg.Camera, time.Now().UTC()})
	if err != nil {
		d.log.Warn("encoding defect evidence", "err", err)
		return
	}
	d.evidence = append(d.evidence, line)
	if n := len(d.evidence); n > maxEvidence {
		d.evidence = append([][]byte(nil), d.evidence[n-maxEvidence:]...)
	}
	var buf bytes.Buffer
	for _, l := range d.evidence {
		buf.Write(l)
		buf.WriteByte('\n')
	}
	if err := imageops.WriteFileAtomic(d.evidencePath(), buf.Bytes()); err != nil {
		d.met.errors.WithLabelValues("state").Inc()
		d.log.Warn("saving defect evidence", "err", err)
	}
}

// loadEvidence reads the evidence lines kept so far (bounded; lines that are
// not JSON objects are dropped).
func loadEvidence(path string, warn func(string, ...any)) [][]byte {
	data, err := readBounded(path, maxEvidenceBytes)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			warn("defect evidence unreadable: starting a new file", "err", err)
		}
		return nil
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var v map[string]any
		if json.Unmarshal(sc.Bytes(), &v) == nil {
			out = append(out, append([]byte(nil), sc.Bytes()...))
		}
	}
	if len(out) > maxEvidence {
		out = out[len(out)-maxEvidence:]
	}
	return out
}
