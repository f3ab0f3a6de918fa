package daemon_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/alerts"
	"github.com/inspectd/inspectd/evalstats"
	"github.com/inspectd/inspectd/local"
	"github.com/inspectd/inspectd/model"
)

// TestLearnConfirmedGood: a good part the patch model rejected is confirmed
// good on the feedback topic; it joins the model as a new version at
// INSPECTD_MODEL (the previous kept as .prev), the daemon reloads it, and the
// same part inspected again scores lower.
func TestLearnConfirmedGood(t *testing.T) {
	f := newFixtureFor(t, 31, local.MethodPatchCore)
	hot := filepath.Join(f.dir, "hot")
	sub := subscribe(t, f.broker.URL(), "cam0")
	before, err := model.Load(f.model)
	if err != nil {
		t.Fatal(err)
	}
	// A threshold at the good parts' median rejects about half of them.
	t.Setenv("INSPECTD_THRESHOLD", strconv.FormatFloat(evalstats.Median(before.Manifest.Training.GoodScores), 'g', -1, 64))
	cfg := f.config(t, "dir:"+hot)
	if !cfg.LearnGood {
		t.Fatal("INSPECTD_LEARN_GOOD is not on by default")
	}
	d, stop := startDaemon(t, cfg)
	dropGood(t, hot, 0, 8)
	events := sub.waitEvents(t, 8, 60*time.Second)
	var worst *alerts.Event
	for i, ev := range events {
		if ev.Verdict == alerts.VerdictDefect && (worst == nil || ev.Score > worst.Score) {
			worst = &events[i]
		}
	}
	if worst == nil {
		t.Fatalf("no good part rejected at the median threshold: %+v", events)
	}
	learned := func(result string) float64 {
		return scrape(t, d, `inspectd_learned_total{result="`+result+`"}`)
	}
	if tok := sub.client.Publish("inspectd/cam0/feedback", 1, false, fmt.Sprintf(`{"event_id":%q,"label":"good"}`, worst.ID)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publishing feedback: %v", tok.Error())
	}
	waitFor(t, "the part learnt", 60*time.Second, func() bool { return learned("added")+learned("covered")+learned("failed")+learned("refused") > 0 })
	if learned("added") != 1 {
		t.Fatalf("learning results: added %v covered %v failed %v refused %v", learned("added"), learned("covered"), learned("failed"), learned("refused"))
	}
	after, err := model.Load(f.model)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := model.Load(f.model + model.PrevSuffix)
	if err != nil {
		t.Fatalf("previous version not kept: %v", err)
	}
	if prev.Manifest.ID != before.Manifest.ID || after.Manifest.Training.Parent != before.Manifest.ID || after.Manifest.Training.ConfirmedGood != 1 {
		t.Errorf("versions: prev %s, new %s (parent %s, %d confirmed); calibrated %s", prev.Manifest.ID, after.Manifest.ID,
			after.Manifest.Training.Parent, after.Manifest.Training.ConfirmedGood, before.Manifest.ID)
	}
	waitFor(t, "the new version in force", 10*time.Second, func() bool { return d.Status().ModelID == after.Manifest.ID })

	// The same part again, under a new name: the new version knows it.
	src := filepath.Join(hot, "done", worst.PartID)
	if _, err := os.Stat(src); err != nil {
		src = filepath.Join(hot, worst.PartID)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("the inspected part is not in done/: %v", err)
	}
	if err := os.WriteFile(filepath.Join(hot, "again-"+worst.PartID), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var again *alerts.Event
	waitFor(t, "the part inspected again", 30*time.Second, func() bool {
		for _, ev := range sub.uniqueEvents() {
			if strings.HasPrefix(ev.PartID, "again-") {
				again = &ev
				return true
			}
		}
		return false
	})
	if again.ModelID != after.Manifest.ID || !(again.Score < worst.Score) {
		t.Errorf("again: model %s score %v; first: model %s score %v", again.ModelID, again.Score, worst.ModelID, worst.Score)
	}
	stop()
}
