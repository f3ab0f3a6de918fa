// Package operating keeps a camera's operating point on the line: which
// threshold is in force and where it came from, its refinement from the
// stream of scores (most parts on a line are good), operator feedback,
// and drift of the score distribution. It does no I/O: the daemon persists
// State and publishes what changed; Simulate replays a labelled test set.
//
// Refinement. After Config.After scores, and every Config.Every scores after
// that, the good parts' distribution is re-estimated from the last
// Config.Window scores with a fit that defects above the stream's 80th
// percentile cannot bias (a normal on log scores truncated there, see
// robustLogFit). The threshold is the starting one moved by the fit's median
// against the calibration's out-of-sample good scores' median (in log
// units); without those scores it is the fit's prediction bound for
// Config.TargetFRR. It never leaves [MinFactor, MaxFactor] x the starting
// threshold, and it moves only by at least MinChange (relative), so the
// change counter says something. Confirmed-good parts (operator feedback)
// put a floor under it: no more than TargetFRR of the parts in the window
// may be confirmed-good parts above the threshold. Confirmed defects are
// taken out of the window so they do not widen the good parts' fit.
//
// Drift. The median of the last Config.DriftWindow log scores is compared
// with the reference in robust units: the line's own first fit once there is
// one, before it the calibration's out-of-sample good scores (median and
// MAD of their logs). Scores moving up by more than Config.DriftLimit of
// those units is drift (false rejects follow); moving down is drift only
// against the line's own reference, since calibration's out-of-sample
// scores run higher than the final model's on new good parts. While the
// stream drifts, refinement holds the threshold: a changed distribution is
// for a person to look at, not to be followed. Drifting up with a threshold
// refined below the start puts it back to the start (reason "drift"): the
// refined one would reject good parts in numbers.
//
// Rejects. The decisions are weighed against what the target rate and the
// line's defect rate explain (rejects.go); the check only says so.
package operating

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/inspectd/inspectd/evalstats"
)

// Source says where the threshold in force came from.
type Source string

const (
	SourceCalibrated Source = "calibrated" // the model's threshold
	SourceOverride   Source = "override"   // INSPECTD_THRESHOLD
	SourceFRR        Source = "frr"        // INSPECTD_FRR on the model's good scores
	SourceRefined    Source = "refined"    // moved on the line (stream or feedback)
)

// Reasons a threshold changes (the label of inspectd_threshold_changes_total).
const (
	ReasonRefined  = "refined"  // re-estimated from the stream
	ReasonFeedback = "feedback" // raised by confirmed-good parts
	ReasonRestored = "restored" // taken from the state saved before a restart
	ReasonDrift    = "drift"    // back to the start: scores drifted up
)

// Defaults of Config's zero fields.
const (
	DefaultTargetFRR   = 0.01
	DefaultAfter       = 100
	DefaultWindow      = 1000
	DefaultMinFactor   = 0.25
	DefaultMaxFactor   = 2
	DefaultMinChange   = 0.02
	DefaultDriftWindow = 50
	DefaultDriftLimit  = 1.0
	// MaxConfirmedGood bounds the confirmed-good scores kept.
	MaxConfirmedGood = 256
	// MaxWindow bounds Window (memory and state file size).
	MaxWindow = 100_000
)

// MinFactorFor is the lower bound factor for a model whose threshold came
// by thresholdMethod (the manifest's threshold.method). Leave-one-out
// scores of the final model ("loo-..."; the patch methods) carry no fold
// model's bias for the line to correct, and lowering their threshold on the
// line's shift followed noise in the line's body (docs/lab-notes.md,
// session 15), so refinement only raises it. Fold-model scores (the pooled
// methods) run higher than the final model's on new good parts, which the
// line may correct down to DefaultMinFactor.
func MinFactorFor(thresholdMethod string) float64 {
	if strings.HasPrefix(thresholdMethod, evalstats.ScoresLeaveOneOut) {
		return 1
	}
	return DefaultMinFactor
}

// Config sets up a Refiner. Zero values take the defaults above.
type Config struct {
	// Start is the threshold in force before refinement and Source where it
	// came from (calibrated, override or frr).
	Start  float64
	Source Source
	// TargetFRR is the false-reject rate refinement aims at.
	TargetFRR float64
	// Refine turns refinement on; drift and feedback bookkeeping work
	// without it.
	Refine bool
	// After is the number of scores before the first estimate; Every the
	// number between later ones (default After/4, at least 1).
	After, Every int
	// Window is how many recent scores the estimate uses.
	Window int
	// MinFactor and MaxFactor bound the threshold to [MinFactor, MaxFactor]
	// x Start.
	MinFactor, MaxFactor float64
	// MinChange is the smallest relative move the estimate makes.
	MinChange float64
	// CalibrationGood are the model's out-of-sample good scores: what the
	// line's scores are compared with to refine, and the drift reference
	// until the line has its own (may be empty). TailMethod is the tail
	// model the model's threshold came from (empty: evalstats.MethodAuto),
	// for the false-reject rate predicted at a refined threshold.
	CalibrationGood []float64
	TailMethod      evalstats.ThresholdMethod
	// DriftWindow recent scores are compared with the reference; drift when
	// their median is more than DriftLimit robust units away.
	DriftWindow int
	DriftLimit  float64
	// DefectRate is the most defects the line makes (a share of parts): the
	// reject-rate check weighs the decisions against it (see Rejects).
	// RejectWindow is how many recent decisions the shown reject rate
	// counts.
	DefectRate   float64
	RejectWindow int
	// Now stamps changes (nil: no time, as in Simulate).
	Now func() time.Time
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Source == "" {
		c.Source = SourceCalibrated
	}
	if c.TargetFRR == 0 {
		c.TargetFRR = DefaultTargetFRR
	}
	if c.After == 0 {
		c.After = DefaultAfter
	}
	if c.Every == 0 {
		c.Every = max(c.After/4, 1)
	}
	if c.Window == 0 {
		c.Window = max(DefaultWindow, c.After)
	}
	if c.MinFactor == 0 {
		c.MinFactor = DefaultMinFactor
	}
	if c.MaxFactor == 0 {
		c.MaxFactor = DefaultMaxFactor
	}
	if c.MinChange == 0 {
		c.MinChange = DefaultMinChange
	}
	if c.DriftWindow == 0 {
		c.DriftWindow = DefaultDriftWindow
	}
	if c.DriftLimit == 0 {
		c.DriftLimit = DefaultDriftLimit
	}
	if c.DefectRate == 0 {
		c.DefectRate = DefaultDefectRate
	}
	if c.RejectWindow == 0 {
		c.RejectWindow = DefaultRejectWindow
	}
	return c
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case !(c.Start > 0) || math.IsInf(c.Start, 0):
		return fmt.Errorf("operating: start threshold %v: want a positive number", c.Start)
	case c.Source != SourceCalibrated && c.Source != SourceOverride && c.Source != SourceFRR:
		return fmt.Errorf("operating: source %q: want calibrated, override or frr", c.Source)
	case !(c.TargetFRR > 0 && c.TargetFRR < 0.5):
		return fmt.Errorf("operating: target FRR %v: want 0 < FRR < 0.5", c.TargetFRR)
	case c.After < minFit || c.After > MaxWindow:
		return fmt.Errorf("operating: refine after %d scores: want %d..%d", c.After, minFit, MaxWindow)
	case c.Every < 1:
		return fmt.Errorf("operating: refine every %d scores: want at least 1", c.Every)
	case c.Window < c.After || c.Window > MaxWindow:
		return fmt.Errorf("operating: window %d: want %d (After)..%d", c.Window, c.After, MaxWindow)
	case !(c.MinFactor > 0 && c.MinFactor <= 1):
		return fmt.Errorf("operating: lower bound factor %v: want 0 < f <= 1", c.MinFactor)
	case !(c.MaxFactor >= 1 && c.MaxFactor <= 100):
		return fmt.Errorf("operating: upper bound factor %v: want 1 <= f <= 100", c.MaxFactor)
	case !(c.MinChange >= 0 && c.MinChange < 1):
		return fmt.Errorf("operating: minimum change %v: want 0 <= x < 1", c.MinChange)
	case c.DriftWindow < 5 || c.DriftWindow > c.Window:
		return fmt.Errorf("operating: drift window %d: want 5..%d (Window)", c.DriftWindow, c.Window)
	case !(c.DriftLimit > 0) || math.IsInf(c.DriftLimit, 0):
		return fmt.Errorf("operating: drift limit %v: want > 0", c.DriftLimit)
	case !(c.DefectRate > 0 && c.DefectRate < 1):
		return fmt.Errorf("operating: defect rate %v: want 0 < rate < 1", c.DefectRate)
	case c.RejectWindow < minRejectWindow || c.RejectWindow > MaxRejectWindow:
		return fmt.Errorf("operating: reject window %d: want %d..%d", c.RejectWindow, minRejectWindow, MaxRejectWindow)
	}
	for i, v := range c.CalibrationGood {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("operating: calibration good score %d is %v", i, v)
		}
	}
	return nil
}

// Change is one move of the threshold.
type Change struct {
	From, To float64
	Reason   string
	// Observed is the number of scores seen when it happened.
	Observed uint64
	// PredictedFRR is the false-reject rate expected at To (0 without a fit;
	// see Refiner.predictLocked).
	PredictedFRR float64
	Time         time.Time `json:",omitzero"`
}

// Drift is the stream's position against its reference.
type Drift struct {
	// Score is (median of recent log scores - reference) / reference scale:
	// 0 without enough scores or a reference.
	Score    float64
	Drifting bool
	// Reference is "line" (the line's first fit), "calibration", or "" (none yet).
	Reference string
}

// Snapshot is what status and metrics show.
type Snapshot struct {
	Threshold    float64
	Source       Source
	Start        float64
	Lower, Upper float64
	TargetFRR    float64
	Refine       bool
	Observed     uint64
	// Fit is the latest line fit (nil before the first) and PredictedFRR the
	// false-reject rate expected at Threshold.
	Fit           *Fit
	PredictedFRR  float64
	ConfirmedGood int
	Drift         Drift
	Rejects       Rejects
	LastChange    *Change
}

// Refiner holds one camera's operating point. Safe for concurrent use.
type Refiner struct {
	mu       sync.Mutex
	cfg      Config
	lo, hi   float64
	thresh   float64
	source   Source
	window   []float64 // ring of recent positive finite scores
	next     int       // ring write position once full
	observed uint64    // scores seen (including skipped ones)
	sinceFit int
	fit      *Fit // latest
	baseline *Fit // first: the drift reference
	calRef   *Fit // calibration's good scores as a reference (Mu = median, Sigma = MAD)
	good     []float64
	last     *Change
	// The reject-rate check: a ring of recent decisions (rejects.go).
	rejects     []bool
	rnext       int
	nRejected   int
	cusum       float64
	rejectsHigh bool
}

// New makes a Refiner; cfg gets defaults and is validated.
func New(cfg Config) (*Refiner, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Refiner{cfg: cfg, lo: cfg.MinFactor * cfg.Start, hi: cfg.MaxFactor * cfg.Start, thresh: cfg.Start, source: cfg.Source,
		window: make([]float64, 0, min(cfg.Window, 4096))}
	var logs []float64
	for _, v := range cfg.CalibrationGood {
		if v > 0 {
			logs = append(logs, math.Log(v))
		}
	}
	if len(logs) >= 3 {
		if m, s := medianMAD(logs); s > 0 {
			r.calRef = &Fit{Mu: m, Sigma: s, N: len(logs)}
		}
	}
	return r, nil
}

// Threshold is the threshold in force and its source.
func (r *Refiner) Threshold() (float64, Source) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.thresh, r.source
}

// Observe adds the score of a part just decided and whether it was rejected
// (by the threshold in force then, which may be a commanded one: a decision
// is never revisited), and re-estimates when due. It returns the change it
// made, if any. Scores that are not positive and finite are counted, and
// their decisions too, but not used for the estimate.
func (r *Refiner) Observe(score float64, rejected bool) (Change, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.observed++
	r.recordLocked(rejected)
	if !(score > 0) || math.IsInf(score, 0) {
		return Change{}, false
	}
	if len(r.window) < r.cfg.Window {
		r.window = append(r.window, score)
	} else {
		r.window[r.next] = score
		r.next = (r.next + 1) % r.cfg.Window
	}
	r.sinceFit++
	if r.cfg.Refine && r.thresh < r.cfg.Start {
		// Scores moving up make a threshold refined below the start reject
		// good parts in numbers: back to the start until a person looks.
		if d := r.driftLocked(); d.Drifting && d.Score > 0 {
			return r.setLocked(r.cfg.Start, r.cfg.Source, ReasonDrift), true
		}
	}
	if len(r.window) < r.cfg.After || (r.fit != nil && r.sinceFit < r.cfg.Every) {
		return Change{}, false
	}
	r.sinceFit = 0
	fit, err := robustLogFit(r.window)
	if err != nil {
		return Change{}, false
	}
	r.fit = &fit
	if r.baseline == nil {
		b := fit
		r.baseline = &b
	}
	if !r.cfg.Refine || r.driftLocked().Drifting {
		return Change{}, false
	}
	return r.moveLocked(r.proposeLocked(fit), ReasonRefined)
}

// proposeLocked is where the line's scores put the threshold. With the
// calibration's out-of-sample good scores it is the starting threshold moved
// by the line's shift against them (the fit's median over theirs, on log
// scores): the fold or leave-one-out scores run higher than the final model's
// on new good parts, and that bias is what the line can measure. The tail
// stays the calibration's: a fit to the line's body extrapolates a tail
// lighter than good parts have (docs/lab-notes.md), and its prediction bound,
// used without calibration scores, rejects more.
func (r *Refiner) proposeLocked(fit Fit) float64 {
	if r.calRef == nil {
		return fit.Threshold(r.cfg.TargetFRR)
	}
	return r.cfg.Start * math.Exp(fit.Mu-r.calRef.Mu)
}

// predictLocked is the false-reject rate expected at t (0 before the first
// fit): the calibration's tail model at t moved back by the line's shift,
// so that it reads the target where refinement put the threshold; without
// calibration scores, the line fit's own.
func (r *Refiner) predictLocked(t float64) float64 {
	if r.fit == nil {
		return 0
	}
	if r.calRef != nil {
		p, err := evalstats.PredictFRR(r.cfg.CalibrationGood, t*math.Exp(r.calRef.Mu-r.fit.Mu), r.cfg.TailMethod)
		if err == nil {
			return p
		}
	}
	return r.fit.FRR(t)
}

// moveLocked applies the confirmed-good floor and the bounds to a proposed
// threshold and moves there if it is far enough from the current one.
func (r *Refiner) moveLocked(proposed float64, reason string) (Change, bool) {
	t := proposed
	if floor, ok := r.goodFloorLocked(); ok && floor > t {
		t, reason = floor, ReasonFeedback
	}
	t = min(max(t, r.lo), r.hi)
	if reason != ReasonFeedback && math.Abs(t-r.thresh) < r.cfg.MinChange*r.thresh {
		return Change{}, false
	}
	if t == r.thresh {
		return Change{}, false
	}
	return r.setLocked(t, SourceRefined, reason), true
}

func (r *Refiner) setLocked(t float64, src Source, reason string) Change {
	c := Change{From: r.thresh, To: t, Reason: reason, Observed: r.observed, PredictedFRR: r.predictLocked(t)}
	if r.cfg.Now != nil {
		c.Time = r.cfg.Now()
	}
	r.thresh, r.source, r.last = t, src, &c
	return c
}

// goodFloorLocked is the lowest threshold that keeps the confirmed-good parts
// above it to at most TargetFRR of the parts in the window.
func (r *Refiner) goodFloorLocked() (float64, bool) {
	if len(r.good) == 0 {
		return 0, false
	}
	allowed := int(math.Floor(r.cfg.TargetFRR * float64(len(r.window))))
	if len(r.good) <= allowed {
		return 0, false
	}
	s := slices.Clone(r.good)
	slices.Sort(s)
	slices.Reverse(s)
	return s[allowed], true
}

// ConfirmGood records an operator's word that a part with this score was
// good. A confirmed-good part above the threshold raises it (within bounds)
// when refinement is on; it returns the change, if any.
func (r *Refiner) ConfirmGood(score float64) (Change, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !(score > 0) || math.IsInf(score, 0) {
		return Change{}, false
	}
	if len(r.good) == MaxConfirmedGood {
		r.good = slices.Delete(r.good, 0, 1)
	}
	r.good = append(r.good, score)
	if !r.cfg.Refine {
		return Change{}, false
	}
	if floor, ok := r.goodFloorLocked(); ok && floor > r.thresh {
		return r.moveLocked(floor, ReasonFeedback)
	}
	return Change{}, false
}

// ConfirmDefect records an operator's word that a part with this score was
// defective: the score leaves the window (it is not a good part's). It
// reports whether the score was found there.
func (r *Refiner) ConfirmDefect(score float64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := slices.Index(r.window, score)
	if i < 0 {
		return false
	}
	// Keep the ring's order: rebuild it oldest first without the entry.
	ordered := r.orderedLocked()
	j := slices.Index(ordered, score)
	ordered = slices.Delete(ordered, j, j+1)
	r.window, r.next = ordered, 0
	return true
}

// orderedLocked returns the window oldest first (a new slice).
func (r *Refiner) orderedLocked() []float64 {
	if len(r.window) < r.cfg.Window {
		return slices.Clone(r.window)
	}
	return append(slices.Clone(r.window[r.next:]), r.window[:r.next]...)
}

// Drift says whether the recent scores have moved away from the reference.
func (r *Refiner) Drift() Drift {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.driftLocked()
}

func (r *Refiner) driftLocked() Drift {
	ref, name := r.baseline, "line"
	if ref == nil {
		ref, name = r.calRef, "calibration"
	}
	if ref == nil || len(r.window) < r.cfg.DriftWindow {
		return Drift{}
	}
	// The newest DriftWindow scores, without copying the whole ring.
	logs := make([]float64, r.cfg.DriftWindow)
	end := len(r.window)
	if end == r.cfg.Window {
		end = r.next
	}
	for i := range logs {
		j := (end - 1 - i + len(r.window)) % len(r.window)
		logs[i] = math.Log(r.window[j])
	}
	slices.Sort(logs)
	z := (quantileSorted(logs, 0.5) - ref.Mu) / ref.Sigma
	d := Drift{Score: z, Reference: name}
	d.Drifting = z > r.cfg.DriftLimit || (name == "line" && z < -r.cfg.DriftLimit)
	return d
}

// Snapshot is the state for status and metrics.
func (r *Refiner) Snapshot() Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Snapshot{Threshold: r.thresh, Source: r.source, Start: r.cfg.Start, Lower: r.lo, Upper: r.hi,
		TargetFRR: r.cfg.TargetFRR, Refine: r.cfg.Refine, Observed: r.observed, ConfirmedGood: len(r.good), Drift: r.driftLocked(),
		Rejects: r.rejectsLocked()}
	if r.fit != nil {
		f := *r.fit
		s.Fit, s.PredictedFRR = &f, r.predictLocked(r.thresh)
	}
	if r.last != nil {
		c := *r.last
		s.LastChange = &c
	}
	return s
}

// StateVersion is the layout of State.
const StateVersion = 1

// State is what survives a restart (the daemon saves it as JSON). Key ties it
// to one model and settings: a State for another key is refused by Restore.
type State struct {
	Version   int       `json:"version"`
	Key       string    `json:"key"`
	Threshold float64   `json:"threshold"`
	Source    Source    `json:"source"`
	Observed  uint64    `json:"observed"`
	Scores    []float64 `json:"scores"` // oldest first
	// Rejects are the recent decisions, oldest first (absent in states
	// saved before the reject-rate check).
	Rejects       []bool    `json:"rejects,omitempty"`
	RejectCUSUM   float64   `json:"reject_cusum,omitempty"`
	RejectsHigh   bool      `json:"rejects_high,omitempty"`
	ConfirmedGood []float64 `json:"confirmed_good,omitempty"`
	Fit           *Fit      `json:"fit,omitempty"`
	Baseline      *Fit      `json:"baseline,omitempty"`
	LastChange    *Change   `json:"last_change,omitempty"`
}

// Key identifies the model and settings a State belongs to: the model id,
// the start threshold, its source, the target rate and the bounds.
func (r *Refiner) Key(modelID string) string {
	c := r.cfg
	return fmt.Sprintf("%s|%s|%.17g|%.17g|%.17g|%.17g", modelID, c.Source, c.Start, c.TargetFRR, c.MinFactor, c.MaxFactor)
}

// State returns a copy to persist.
func (r *Refiner) State(key string) State {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := State{Version: StateVersion, Key: key, Threshold: r.thresh, Source: r.source, Observed: r.observed,
		Scores: r.orderedLocked(), ConfirmedGood: slices.Clone(r.good), Rejects: r.orderedRejectsLocked(), RejectCUSUM: r.cusum, RejectsHigh: r.rejectsHigh}
	if r.fit != nil {
		f := *r.fit
		st.Fit = &f
	}
	if r.baseline != nil {
		b := *r.baseline
		st.Baseline = &b
	}
	if r.last != nil {
		c := *r.last
		st.LastChange = &c
	}
	return st
}

// ErrStateMismatch says a saved State belongs to another model or settings.
var ErrStateMismatch = errors.New("operating: saved state is for another model or settings")

// Restore takes a State saved under key. Everything in it is checked (it
// comes from a file): a bad value is an error naming it and nothing changes.
// Scores beyond the window keep the newest; a threshold outside today's
// bounds is refused. With refinement off the threshold stays the start one
// and only the scores, fits and feedback return.
func (r *Refiner) Restore(st State, key string) error {
	switch {
	case st.Version != StateVersion:
		return fmt.Errorf("operating: saved state version %d, want %d", st.Version, StateVersion)
	case st.Key != key:
		return fmt.Errorf("%w (saved %q, now %q)", ErrStateMismatch, st.Key, key)
	case len(st.Scores) > MaxWindow || len(st.ConfirmedGood) > MaxConfirmedGood || len(st.Rejects) > MaxRejectWindow:
		return fmt.Errorf("operating: saved state holds %d scores, %d confirmed-good ones and %d decisions: more than the bounds %d, %d, %d",
			len(st.Scores), len(st.ConfirmedGood), len(st.Rejects), MaxWindow, MaxConfirmedGood, MaxRejectWindow)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !(st.Threshold >= r.lo && st.Threshold <= r.hi) {
		return fmt.Errorf("operating: saved threshold %v outside the bounds [%v, %v]", st.Threshold, r.lo, r.hi)
	}
	if st.Source != SourceRefined && st.Source != r.cfg.Source {
		return fmt.Errorf("operating: saved threshold source %q: want %q or %q", st.Source, r.cfg.Source, SourceRefined)
	}
	for _, list := range [][]float64{st.Scores, st.ConfirmedGood} {
		for i, v := range list {
			if !(v > 0) || math.IsInf(v, 0) {
				return fmt.Errorf("operating: saved score %d is %v: want positive and finite", i, v)
			}
		}
	}
	if !(st.RejectCUSUM >= 0) || math.IsInf(st.RejectCUSUM, 0) {
		return fmt.Errorf("operating: saved reject-rate statistic %v: want a number >= 0", st.RejectCUSUM)
	}
	for _, f := range []*Fit{st.Fit, st.Baseline} {
		if f != nil && (math.IsNaN(f.Mu) || math.IsInf(f.Mu, 0) || !(f.Sigma > 0) || math.IsInf(f.Sigma, 0) || f.N < 0) {
			return fmt.Errorf("operating: saved fit %+v is not a fit", *f)
		}
	}
	scores := st.Scores
	if len(scores) > r.cfg.Window {
		scores = scores[len(scores)-r.cfg.Window:]
	}
	r.window, r.next = slices.Clone(scores), 0
	r.observed = max(st.Observed, uint64(len(scores)))
	r.good = slices.Clone(st.ConfirmedGood)
	r.restoreRejectsLocked(st.Rejects, st.RejectCUSUM, st.RejectsHigh)
	r.fit, r.baseline = cloneFit(st.Fit), cloneFit(st.Baseline)
	if r.cfg.Refine {
		r.thresh, r.source = st.Threshold, st.Source
		if st.LastChange != nil {
			c := *st.LastChange
			r.last = &c
		}
	}
	return nil
}

func cloneFit(f *Fit) *Fit {
	if f == nil {
		return nil
	}
	c := *f
	return &c
}
