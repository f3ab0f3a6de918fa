package alerts

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// publishMany sends payloads in order from one connection, QoS 1, as a PLC
// does, and waits for every acknowledgement.
func publishMany(t *testing.T, url, topic string, payloads [][]byte) {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("test-plc-%d", time.Now().UnixNano())))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("test publisher connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	toks := make([]mqtt.Token, len(payloads))
	for i, p := range payloads {
		toks[i] = c.Publish(topic, 1, false, p)
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
}

// waitSubscribed sends probe triggers until one arrives (instead of sleeping
// for the subscription to settle) and empties the queue.
func waitSubscribed(t *testing.T, p *Publisher, url, topic string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		publishRaw(t, url, topic, []byte("probe"), false)
		select {
		case <-p.Trigger():
			for len(p.Trigger()) > 0 {
				<-p.Trigger()
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("trigger subscription never delivered")
		}
	}
}

// Triggers are a contract with the PLC: kept in order, oversized payloads
// refused (before they are copied), drops counted and logged at a limited
// rate. On main: 300 triggers came out reordered (paho's OrderMatters
// false), 284 of them dropped with one WARN line each, and the size check ran
// after copying the payload.
func TestTriggersOrderedBoundedAndCounted(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	const camera = "cam-flood"
	topic := TopicsFor(DefaultTopicPrefix, camera).Trigger
	cfg := testConfig(t, b.url("tcp"), camera)
	log, logBuf := testLogger(t)
	cfg.Logger = log
	p := newPublisher(t, cfg)
	eventually(t, 3*time.Second, "connection", p.Connected)
	waitSubscribed(t, p, b.url("tcp"), topic)
	base := p.Stats().TriggersDropped

	phases := []struct {
		name     string
		payloads [][]byte
		read     bool     // take the triggers
		want     []string // part ids delivered, in order
		dropped  uint64   // counted drops after this phase
	}{
		{name: "300 quickly, in order", payloads: numbered("flood-", 300), read: true, want: names("flood-", 300)},
		{name: "oversized payloads refused", read: true, want: []string{"after-big"}, dropped: 2,
			payloads: [][]byte{bytes.Repeat([]byte("x"), 2<<20), bytes.Repeat([]byte("y"), maxTriggerPayload+1), []byte("after-big")}},
		{name: "part id too long", read: true, want: []string{"short"}, dropped: 3,
			payloads: [][]byte{bytes.Repeat([]byte("z"), maxPartIDBytes+1), []byte("short")}},
		{name: "queue overflow", payloads: numbered("burst-", triggerBuffer+76), read: false, dropped: 3 + 76},
	}
	for _, ph := range phases {
		publishMany(t, b.url("tcp"), topic, ph.payloads)
		if ph.read {
			var got []string
			for len(got) < len(ph.want) {
				select {
				case tr := <-p.Trigger():
					got = append(got, tr.PartID)
				case <-time.After(5 * time.Second):
					t.Fatalf("%s: %d of %d triggers delivered", ph.name, len(got), len(ph.want))
				}
			}
			if strings.Join(got, ",") != strings.Join(ph.want, ",") {
				t.Fatalf("%s: delivered %v; want %v", ph.name, firstDiff(got, ph.want), ph.want[:min(3, len(ph.want))])
			}
		} else {
			eventually(t, 5*time.Second, "the queue to fill", func() bool { return p.Stats().TriggersDropped-base >= ph.dropped })
		}
		if d := p.Stats().TriggersDropped - base; d != ph.dropped {
			t.Fatalf("%s: %d dropped; want %d", ph.name, d, ph.dropped)
		}
	}
	// 79 drops within dropLogEvery: one warning, with the count.
	if n := strings.Count(logBuf.String(), "trigger dropped"); n != 1 {
		t.Errorf("%d warnings about dropped triggers; want 1 per %v", n, dropLogEvery)
	}
	for i := 0; i < triggerBuffer; i++ {
		if tr := <-p.Trigger(); tr.PartID != fmt.Sprintf("burst-%d", i) {
			t.Fatalf("queued trigger %d is %q", i, tr.PartID)
		}
	}
}

func numbered(prefix string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// firstDiff shows where two sequences part.
func firstDiff(got, want []string) string {
	for i := range got {
		if i >= len(want) || got[i] != want[i] {
			return fmt.Sprintf("position %d: %q", i, got[max(0, i-1):min(len(got), i+3)])
		}
	}
	return fmt.Sprintf("%d items", len(got))
}

func TestPartEventID(t *testing.T) {
	a := PartEventID("cam0", "file", "p1.png", "1234", "99")
	cases := []struct {
		name string
		id   string
		same bool
	}{
		{"same part", PartEventID("cam0", "file", "p1.png", "1234", "99"), true},
		{"other camera", PartEventID("cam1", "file", "p1.png", "1234", "99"), false},
		{"other size", PartEventID("cam0", "file", "p1.png", "1235", "99"), false},
		{"other mtime", PartEventID("cam0", "file", "p1.png", "1234", "98"), false},
		{"fields shifted", PartEventID("cam0", "file", "p1.png1234", "", "99"), false},
		{"random", NewID(), false},
	}
	for _, c := range cases {
		if (c.id == a) != c.same {
			t.Errorf("%s: %s vs %s", c.name, c.id, a)
		}
	}
	if len(a) != 36 || a[14] != '5' || checkTopicLevels(a) != nil {
		t.Errorf("id %q is not a version-5 UUID usable as a topic level", a)
	}
}
