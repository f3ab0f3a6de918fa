package daemon_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/alerts"
	"github.com/inspectd/inspectd/daemon"
)

// publishRaw publishes with the retain flag as asked (mqttPublish never
// retains).
func publishRaw(t *testing.T, url, topic string, retained bool, payload string) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("raw-%d", time.Now().UnixNano())).SetProtocolVersion(4))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("client: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish(topic, 1, retained, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publishing %s: %v", topic, tok.Error())
	}
}

// lastOn is the newest payload recorded on topic.
func (r *recorder) lastOn(topic string) string {
	msgs := r.all()
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Topic == topic {
			return string(msgs[i].Payload)
		}
	}
	return ""
}

// Frigate-style commands against a real broker: each .../set changes the
// daemon through the method a Sparkplug DCMD uses, its .../state follows
// (retained, so a client connecting later sees it), invalid values and
// retained commands are refused and counted, messages on other topics are
// not heard, and with INSPECTD_COMMANDS off nothing is.
func TestMQTTCommands(t *testing.T) {
	f := newFixture(t, 21)
	hot := filepath.Join(f.dir, "hot")
	dropParts(t, hot, 0, 2)
	cfg := f.config(t, "dir:"+hot)
	cfg.Commands = true
	url := f.broker.URL()
	tp := alerts.TopicsFor("inspectd", "cam0")
	set, state := tp.CommandTopic, tp.StateTopic
	rec := record(t, url, "inspectd/cam0/+/state")
	// A retained command, left on the broker before the daemon starts: it
	// arrives flagged retained at the subscription and would re-fire at
	// every reconnect, so it is refused. (Published while the daemon is
	// subscribed, the broker forwards it unflagged, as any command.)
	publishRaw(t, url, set(alerts.CommandThreshold), true, "5")
	d, stop := startDaemon(t, cfg)
	modelID := d.Status().ModelID
	startThr := d.Threshold()
	waitUntil(t, 10*time.Second, "initial states", func() bool {
		return rec.lastOn(state(alerts.CommandModel)) == modelID && rec.lastOn(state(alerts.CommandInspection)) == "ON" &&
			rec.lastOn(state(alerts.CommandThreshold)) == fmt.Sprint(startThr)
	})
	counted := func(cmd alerts.CommandName, result string) float64 {
		return scrape(t, d, fmt.Sprintf(`inspectd_commands_total{command="%s",result="%s"}`, cmd, result))
	}

	// Refused: each is counted, none changes the threshold.
	refused := []struct{ topic, payload string }{
		{set(alerts.CommandThreshold), "NaN"},
		{set(alerts.CommandThreshold), "-1"},
		{set(alerts.CommandThreshold), "0"},
		{set(alerts.CommandThreshold), "2e9"},      // above daemon.MaxThreshold
		{set(alerts.CommandThreshold), "1e400"},    // not finite
		{set(alerts.CommandThreshold), "12 parts"}, // not a number
		{set(alerts.CommandThreshold), strings.Repeat("9", alerts.MaxCommandBytes+1)},
	}
	for _, c := range refused {
		mqttPublish(t, url, c.topic, []byte(c.payload))
	}
	// Clearing the retained one reaches the daemon as an empty command.
	publishRaw(t, url, set(alerts.CommandThreshold), true, "")
	waitUntil(t, 10*time.Second, "refusals counted", func() bool {
		return counted(alerts.CommandThreshold, "refused") == float64(len(refused)+2)
	})
	// Not a command topic: never heard, never counted.
	for _, topic := range []string{"inspectd/cam0/threshold", "inspectd/cam0/threshold/set/x", "inspectd/cam1/threshold/set"} {
		mqttPublish(t, url, topic, []byte("7"))
	}
	if d.Threshold() != startThr {
		t.Fatalf("threshold %v after refused commands; want %v", d.Threshold(), startThr)
	}

	steps := []struct {
		cmd     alerts.CommandName
		payload string
		check   func() bool
		state   string
	}{
		{alerts.CommandThreshold, "1e6", func() bool { return d.Threshold() == 1e6 && d.Status().ThresholdSource == daemon.SourceCommand }, "1e+06"},
		{alerts.CommandInspection, "OFF", func() bool { return d.Status().State == daemon.StatePaused }, "OFF"},
		{alerts.CommandInspection, "on", func() bool { return d.Status().State == alerts.StateRunning }, "ON"},
	}
	for _, s := range steps {
		before := counted(s.cmd, "applied")
		mqttPublish(t, url, set(s.cmd), []byte(s.payload))
		waitUntil(t, 10*time.Second, fmt.Sprintf("%s %s applied", s.cmd, s.payload), func() bool {
			return s.check() && rec.lastOn(state(s.cmd)) == s.state && counted(s.cmd, "applied") == before+1
		})
	}
	// The threshold command decides the next parts.
	sub := subscribe(t, url, "cam0")
	dropParts(t, hot, 2, 2)
	for _, ev := range sub.waitEvents(t, 2, 60*time.Second) {
		if ev.Threshold != 1e6 || ev.Verdict != alerts.VerdictOK {
			t.Errorf("event after threshold/set 1e6: threshold %v verdict %s", ev.Threshold, ev.Verdict)
		}
	}

	// Model reload: a new file in place, then RELOAD; a broken one fails
	// (counted), and the model in use stays.
	newID := f.calibrate(t, cfg.Model, 22)
	mqttPublish(t, url, set(alerts.CommandModel), []byte("RELOAD"))
	waitUntil(t, 30*time.Second, "model reloaded by command", func() bool {
		return d.Status().ModelID == newID && rec.lastOn(state(alerts.CommandModel)) == newID
	})
	if err := os.WriteFile(cfg.Model, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	mqttPublish(t, url, set(alerts.CommandModel), []byte("RELOAD"))
	waitUntil(t, 30*time.Second, "failed reload counted", func() bool { return counted(alerts.CommandModel, "failed") == 1 })
	if d.Status().ModelID != newID {
		t.Errorf("model %s after a failed reload; want %s kept", d.Status().ModelID, newID)
	}

	// Retained: a client that connects now sees every state.
	late := record(t, url, "inspectd/cam0/+/state")
	waitUntil(t, 10*time.Second, "retained states", func() bool {
		return late.lastOn(state(alerts.CommandThreshold)) == "1e+06" && late.lastOn(state(alerts.CommandInspection)) == "ON" &&
			late.lastOn(state(alerts.CommandModel)) == newID
	})
	for _, m := range rec.all() {
		t.Logf("recorded %s %s", m.Topic, m.Payload)
	}
	stop()

	// Commands off (the default): the daemon does not listen.
	f.calibrate(t, cfg.Model, 22)
	cfg.Commands = false
	d2, _ := startDaemon(t, cfg)
	mqttPublish(t, url, set(alerts.CommandThreshold), []byte("123"))
	mqttPublish(t, url, set(alerts.CommandInspection), []byte("OFF"))
	time.Sleep(500 * time.Millisecond) // nothing to wait for: absence
	if d2.Threshold() == 123 || !d2.Inspecting() {
		t.Errorf("commands off, yet threshold %v inspecting %v", d2.Threshold(), d2.Inspecting())
	}
}
