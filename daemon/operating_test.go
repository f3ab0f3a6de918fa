package daemon_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/alerts"
	"github.com/inspectd/inspectd/daemon"
	"github.com/inspectd/inspectd/evalstats"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/operating"
	"github.com/inspectd/inspectd/synth"
)

// scrape reads one series from /metrics (0 when absent).
func scrape(t *testing.T, d *daemon.Daemon, series string) float64 {
	t.Helper()
	waitFor(t, "metrics endpoint", 10*time.Second, func() bool { return d.HTTPAddr() != "" })
	resp, err := http.Get("http://" + d.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	return 0
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
	}
}

// dropGood writes n good parts into a hot folder.
func dropGood(t *testing.T, dir string, first, n int) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	for i := first; i < first+n; i++ {
		dropImage(t, filepath.Join(dir, fmt.Sprintf("good%03d.png", i)), synth.Good(int64(5000+i), partSize))
	}
}

// INSPECTD_FRR: the threshold comes from the model's good scores through
// evalstats.ThresholdForFRR, and status, metrics and events say so.
func TestFRROverride(t *testing.T) {
	f := newFixture(t, 11)
	hot := filepath.Join(f.dir, "hot")
	dropParts(t, hot, 0, 2)
	sub := subscribe(t, f.broker.URL(), "cam0")
	t.Setenv("INSPECTD_FRR", "0.2")
	cfg := f.config(t, "dir:"+hot)
	d, _ := startDaemon(t, cfg)
	man, _ := model.Load(f.model)
	method, err := evalstats.ParseThresholdMethod(man.Manifest.Threshold.Method)
	if err != nil {
		t.Fatal(err)
	}
	want, err := evalstats.ThresholdForFRR(man.Manifest.Training.GoodScores, 0.2, method)
	if err != nil {
		t.Fatal(err)
	}
	if want == man.Manifest.Threshold.Value {
		t.Fatal("the 20% threshold equals the calibrated one: the test shows nothing")
	}
	st := d.Status()
	if st.Threshold != want || st.ThresholdSource != "frr" || st.Operating == nil || st.Operating.TargetFRR != 0.2 {
		t.Errorf("status %+v %+v, want threshold %v from frr", st, st.Operating, want)
	}
	if got := scrape(t, d, `inspectd_threshold{source="frr"}`); got != want {
		t.Errorf("inspectd_threshold{source=frr} %v, want %v", got, want)
	}
	for _, ev := range sub.waitEvents(t, 2, 60*time.Second) {
		if ev.Threshold != want || (ev.Verdict == alerts.VerdictDefect) != (ev.Score > want) {
			t.Errorf("event %+v under threshold %v", ev, want)
		}
	}
}

// INSPECTD_FRR with a model that has no good scores is refused with a
// message naming the setting.
func TestFRROverrideNeedsGoodScores(t *testing.T) {
	f := newFixture(t, 12)
	m, err := model.Load(f.model)
	if err != nil {
		t.Fatal(err)
	}
	m.Manifest.Training.GoodScores = nil
	tensors := make([]model.Tensor, 0, len(m.Tensors))
	for _, ti := range m.Manifest.Tensors {
		tensors = append(tensors, m.Tensors[ti.Name])
	}
	if err := model.Save(f.model, m.Manifest, tensors); err != nil {
		t.Fatal(err)
	}
	t.Setenv("INSPECTD_FRR", "0.05")
	cfg := f.config(t, "dir:"+filepath.Join(f.dir, "hot"))
	_, err = daemon.New(t.Context(), cfg, quietLog(), "test")
	if err == nil || !strings.Contains(err.Error(), "INSPECTD_FRR=0.05") || !strings.Contains(err.Error(), "no good scores") {
		t.Fatalf("err %v; want it to name INSPECTD_FRR and the missing good scores", err)
	}
}

// INSPECTD_REFINE=auto (the default) refines a threshold the line can only
// raise, a leave-one-out one, and leaves a fold-model threshold alone; the
// status says which.
func TestRefineAutoFollowsTheModel(t *testing.T) {
	for _, tc := range []struct {
		method string
		want   bool
	}{
		{evalstats.ScoresLeaveOneOut + "gaussian", true},
		{evalstats.ScoresKFold + "gaussian", false},
	} {
		t.Run(tc.method, func(t *testing.T) {
			f := newFixture(t, 14)
			m, err := model.Load(f.model)
			if err != nil {
				t.Fatal(err)
			}
			m.Manifest.Threshold.Method = tc.method
			tensors := make([]model.Tensor, 0, len(m.Tensors))
			for _, ti := range m.Manifest.Tensors {
				tensors = append(tensors, m.Tensors[ti.Name])
			}
			if err := model.Save(f.model, m.Manifest, tensors); err != nil {
				t.Fatal(err)
			}
			d, _ := startDaemon(t, f.config(t, "dir:"+filepath.Join(f.dir, "hot")))
			if st := d.Status(); st.Operating == nil || st.Operating.Refine != tc.want {
				t.Fatalf("threshold method %s: status operating %+v; want refine %v", tc.method, st.Operating, tc.want)
			}
		})
	}
}

// Refinement from the stream after INSPECTD_REFINE_AFTER parts, within the
// bounds, said in status and metrics, and kept across a restart.
func TestRefinementOnTheLine(t *testing.T) {
	f := newFixture(t, 13)
	hot := filepath.Join(f.dir, "hot")
	sub := subscribe(t, f.broker.URL(), "cam0")
	t.Setenv("INSPECTD_REFINE", "on")
	t.Setenv("INSPECTD_REFINE_AFTER", "20")
	t.Setenv("INSPECTD_DRIFT_WINDOW", "10")
	cfg := f.config(t, "dir:"+hot)
	d, stop := startDaemon(t, cfg)
	man, _ := model.Load(f.model)
	cal := man.Manifest.Threshold.Value
	if st := d.Status(); st.ThresholdSource != "calibrated" || st.Threshold != cal || st.Operating.PredictedFRR != nil {
		t.Fatalf("status before refinement %+v %+v", st, st.Operating)
	}
	dropGood(t, hot, 0, 19)
	waitFor(t, "19 inspections", 60*time.Second, func() bool { return d.Inspected() == 19 })
	if st := d.Status(); st.ThresholdSource != "calibrated" || st.Operating.Inspections != 19 {
		t.Fatalf("refined before REFINE_AFTER: %+v %+v", st, st.Operating)
	}
	dropGood(t, hot, 19, 1)
	waitFor(t, "20 inspections", 30*time.Second, func() bool { return d.Inspected() == 20 })
	st := d.Status()
	o := st.Operating
	if o.PredictedFRR == nil || o.Inspections != 20 || o.Bounds != [2]float64{operating.MinFactorFor(man.Manifest.Threshold.Method) * cal, 2 * cal} || !o.Refine {
		t.Fatalf("operating status after 20 parts %+v", o)
	}
	if st.Threshold < o.Bounds[0] || st.Threshold > o.Bounds[1] {
		t.Errorf("threshold %v outside the bounds %v", st.Threshold, o.Bounds)
	}
	changes := scrape(t, d, `inspectd_threshold_changes_total{reason="refined"}`)
	if st.ThresholdSource == "refined" {
		if changes != 1 || o.LastChange == nil || o.LastChange.From != cal || o.LastChange.To != st.Threshold || o.LastChange.Reason != "refined" {
			t.Errorf("refined to %v but changes %v, last change %+v", st.Threshold, changes, o.LastChange)
		}
	} else if st.Threshold != cal || changes != 0 {
		t.Errorf("threshold %v (%s), %v changes", st.Threshold, st.ThresholdSource, changes)
	}
	t.Logf("calibrated %v -> %v (%s), predicted FRR %v, drift %v", cal, st.Threshold, st.ThresholdSource, *o.PredictedFRR, st.ScoreDrift)
	if got := scrape(t, d, `inspectd_threshold{source="`+st.ThresholdSource+`"}`); got != st.Threshold {
		t.Errorf("inspectd_threshold %v, status %v", got, st.Threshold)
	}
	if st.Drift || math.Abs(st.ScoreDrift) > 5 {
		t.Errorf("drift on a steady line of good parts: %v %v", st.Drift, st.ScoreDrift)
	}
	if scrape(t, d, "inspectd_score_drift") != st.ScoreDrift {
		t.Errorf("inspectd_score_drift differs from status %v", st.ScoreDrift)
	}
	// The retained status on MQTT says the same.
	waitFor(t, "status after refinement on MQTT", 10*time.Second, func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		if len(sub.status) == 0 {
			return false
		}
		m := sub.status[len(sub.status)-1]
		return m.Operating != nil && m.Operating.Inspections == 20 && m.Threshold == st.Threshold && m.ThresholdSource == st.ThresholdSource
	})
	// Decisions already published keep their threshold.
	events := sub.waitEvents(t, 20, 30*time.Second)
	for _, ev := range events {
		if ev.Threshold != cal {
			t.Errorf("event %d published with threshold %v, want the calibrated %v (refinement came after)", ev.Seq, ev.Threshold, cal)
		}
	}

	stop()
	data, err := os.ReadFile(filepath.Join(f.dir, "refine-cam0.json"))
	if err != nil {
		t.Fatalf("no state file beside the spool: %v", err)
	}
	var saved struct {
		Threshold float64   `json:"threshold"`
		Observed  uint64    `json:"observed"`
		Scores    []float64 `json:"scores"`
	}
	if err := json.Unmarshal(data, &saved); err != nil || saved.Threshold != st.Threshold || saved.Observed != 20 || len(saved.Scores) != 20 {
		t.Fatalf("state file %s: %v", data, err)
	}
	d2, _ := startDaemon(t, cfg)
	st2 := d2.Status()
	if st2.Threshold != st.Threshold || st2.ThresholdSource != st.ThresholdSource || st2.Operating.Inspections != 20 {
		t.Errorf("after restart %v (%s, %d parts), want %v (%s, 20)", st2.Threshold, st2.ThresholdSource, st2.Operating.Inspections, st.Threshold, st.ThresholdSource)
	}
	if st.ThresholdSource == "refined" && scrape(t, d2, `inspectd_threshold_changes_total{reason="restored"}`) != 1 {
		t.Error("restoring a refined threshold is not counted")
	}
}

// Operator feedback: a confirmed-good part that was rejected raises the
// threshold (decisions already published stay), confirmed defects are kept
// as evidence, and bad, unknown and repeated messages are counted.
func TestFeedback(t *testing.T) {
	f := newFixture(t, 14)
	hot := filepath.Join(f.dir, "hot")
	sub := subscribe(t, f.broker.URL(), "cam0")
	// A line that refined its threshold far down (saved by an earlier run):
	// about half of the good parts are rejected.
	t.Setenv("INSPECTD_REFINE", "on")
	t.Setenv("INSPECTD_REFINE_MIN_FACTOR", "0.01")
	cfg := f.config(t, "dir:"+hot)
	man, _ := model.Load(f.model)
	start := man.Manifest.Threshold.Value
	op, err := operating.New(operating.Config{Start: start, TargetFRR: man.Manifest.Threshold.TargetFRR, MinFactor: 0.01, MaxFactor: 2})
	if err != nil {
		t.Fatal(err)
	}
	state, _ := json.Marshal(operating.State{Version: operating.StateVersion, Key: op.Key(man.Manifest.ID), Threshold: 1.3, Source: operating.SourceRefined})
	if err := os.WriteFile(filepath.Join(f.dir, "refine-cam0.json"), state, 0o644); err != nil {
		t.Fatal(err)
	}
	d, stop := startDaemon(t, cfg)
	if st := d.Status(); st.Threshold != 1.3 || st.ThresholdSource != "refined" {
		t.Fatalf("saved state not restored: %v (%s)", st.Threshold, st.ThresholdSource)
	}
	names := dropParts(t, hot, 0, 8)
	dropGood(t, hot, 0, 8)
	events := sub.waitEvents(t, 16, 60*time.Second)
	var goodRejected, defect *alerts.Event
	for i, ev := range events {
		switch {
		case strings.HasPrefix(ev.PartID, "good") && ev.Verdict == alerts.VerdictDefect && (goodRejected == nil || ev.Score < goodRejected.Score):
			goodRejected = &events[i]
		case ev.PartID == names[1]:
			defect = &events[i]
		}
	}
	if goodRejected == nil || defect == nil {
		t.Fatalf("need a rejected good part and part %s among %+v", names[1], events)
	}
	fb := func(payload string) {
		if tok := sub.client.Publish("inspectd/cam0/feedback", 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publishing feedback: %v", tok.Error())
		}
	}
	count := func(result string) float64 {
		return scrape(t, d, `inspectd_feedback_total{result="`+result+`"}`)
	}

	fb(fmt.Sprintf(`{"event_id":%q,"label":"good"}`, goodRejected.ID))
	waitFor(t, "false_reject feedback", 10*time.Second, func() bool { return count("false_reject") == 1 })
	st := d.Status()
	want := min(goodRejected.Score, 2*start)
	if st.Threshold != want || st.ThresholdSource != "refined" || st.Operating.LastChange.Reason != "feedback" || st.Operating.ConfirmedGood != 1 {
		t.Errorf("after confirming a rejected good part (score %v): threshold %v (%s), %+v; want %v", goodRejected.Score, st.Threshold, st.ThresholdSource, st.Operating.LastChange, want)
	}
	if n := scrape(t, d, `inspectd_threshold_changes_total{reason="feedback"}`); n != 1 {
		t.Errorf("feedback changes %v", n)
	}

	fb(fmt.Sprintf(`{"part_id":%q,"label":"defect"}`, defect.PartID))
	fb(fmt.Sprintf(`{"event_id":%q,"label":"defect"}`, goodRejected.ID)) // second word on it
	fb(`{"event_id":"no-such-event","label":"good"}`)
	fb(`{"event_id":"x","label":"bad"}`)
	fb(`not json`)
	fb(strings.Repeat("x", alerts.MaxFeedbackBytes+1))
	waitFor(t, "all feedback counted", 10*time.Second, func() bool {
		return count("invalid") == 3 && count("unknown_event") == 1 && count("duplicate") == 1 &&
			count("defect")+count("missed_defect") == 1
	})
	data, err := os.ReadFile(filepath.Join(f.dir, "defects-cam0.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		EventID string  `json:"event_id"`
		PartID  string  `json:"part_id"`
		Label   string  `json:"label"`
		Camera  string  `json:"camera"`
		Score   float64 `json:"score"`
	}
	if lines := strings.Split(strings.TrimSpace(string(data)), "\n"); len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &ev) != nil ||
		ev.EventID != defect.ID || ev.PartID != defect.PartID || ev.Label != "defect" || ev.Score != defect.Score || ev.Camera != "cam0" {
		t.Errorf("evidence %s", data)
	}

	// Published decisions are not rewritten: no event came again.
	stop()
	for _, e := range sub.uniqueEvents() {
		if e.ID == goodRejected.ID && e.Verdict != alerts.VerdictDefect {
			t.Errorf("event %s re-published as %s", e.ID, e.Verdict)
		}
	}
	if n := len(sub.uniqueEvents()); n != 16 {
		t.Errorf("%d events, want 16", n)
	}
}

// dropNoise writes n parts of pure noise: nothing like the good parts, so
// their scores jump up as after a lighting change.
func dropNoise(t *testing.T, dir string, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		img := gocv.NewMatWithSize(partSize, partSize, gocv.MatTypeCV8UC3)
		gocv.SetRNGSeed(i)
		gocv.RandU(&img, gocv.NewScalar(0, 0, 0, 0), gocv.NewScalar(255, 255, 255, 0))
		dropImage(t, filepath.Join(dir, fmt.Sprintf("noise%03d.png", i)), img)
	}
}

// Scores drifting up: status and metric say drift, and a threshold refined
// below the calibrated one goes back to it.
func TestDrift(t *testing.T) {
	f := newFixture(t, 13) // the model TestRefinementOnTheLine refines down
	hot := filepath.Join(f.dir, "hot")
	t.Setenv("INSPECTD_REFINE", "on")
	t.Setenv("INSPECTD_REFINE_AFTER", "20")
	t.Setenv("INSPECTD_DRIFT_WINDOW", "5")
	t.Setenv("INSPECTD_REJECT_WINDOW", "20")
	t.Setenv("INSPECTD_DEFECT_RATE", "0.3")
	cfg := f.config(t, "dir:"+hot)
	d, _ := startDaemon(t, cfg)
	man, _ := model.Load(f.model)
	cal := man.Manifest.Threshold.Value
	dropGood(t, hot, 0, 20)
	waitFor(t, "20 inspections", 60*time.Second, func() bool { return d.Inspected() == 20 })
	st := d.Status()
	if st.ThresholdSource != "refined" || st.Threshold >= cal || st.Drift {
		t.Fatalf("want a threshold refined below %v without drift; status %+v", cal, st)
	}
	dropNoise(t, hot, 0, 6)
	waitFor(t, "26 inspections", 60*time.Second, func() bool { return d.Inspected() == 26 })
	st = d.Status()
	if !st.Drift || st.ScoreDrift <= cfg.DriftLimit || st.Threshold != cal || st.ThresholdSource != "calibrated" ||
		st.Operating.LastChange == nil || st.Operating.LastChange.Reason != "drift" {
		t.Errorf("after noise parts: status %+v %+v; want drift and the calibrated threshold %v back", st, st.Operating, cal)
	}
	if m := scrape(t, d, "inspectd_score_drift"); m != st.ScoreDrift {
		t.Errorf("inspectd_score_drift %v, status %v", m, st.ScoreDrift)
	}
	if n := scrape(t, d, `inspectd_threshold_changes_total{reason="drift"}`); n != 1 {
		t.Errorf("drift changes %v", n)
	}
	// A seventh: seven rejects in a row are more than a 1% target and the
	// line's 30% defects explain (INSPECTD_DEFECT_RATE): the reject-rate
	// check is on.
	dropNoise(t, hot, 6, 1)
	waitFor(t, "27 inspections", 60*time.Second, func() bool { return d.Inspected() == 27 })
	st = d.Status()
	o := st.Operating
	if !st.RejectsHigh || st.State != alerts.StateDegraded || !strings.Contains(st.LastError, "7 of the last 20 parts rejected") ||
		o.RecentRejects != 7 || o.RecentDecisions != 20 || math.Abs(o.ExpectedRejectRate-0.31) > 1e-12 {
		t.Errorf("after seven noise parts: status %+v %+v; want rejects_high", st, o)
	}
	if h, r := scrape(t, d, "inspectd_rejects_high"), scrape(t, d, "inspectd_recent_reject_rate"); h != 1 || r != 0.35 {
		t.Errorf("inspectd_rejects_high %v, inspectd_recent_reject_rate %v; want 1, 0.35", h, r)
	}
	// Good parts again: the check clears (four undo seven rejects at this rate).
	dropGood(t, hot, 20, 5)
	waitFor(t, "32 inspections", 60*time.Second, func() bool { return d.Inspected() == 32 })
	st = d.Status()
	if st.RejectsHigh || st.State != alerts.StateRunning || scrape(t, d, "inspectd_rejects_high") != 0 {
		t.Errorf("after five good parts: status %+v %+v; want the reject-rate check off", st, st.Operating)
	}
}
