package daemon_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/alerts"
	"github.com/inspectd/inspectd/internal/testenv"
)

// bridgeConf makes a line's own broker forward everything under inspectd/
// to the plant's broker at QoS 1, keeping what it cannot forward (a
// persistent bridge session) until the plant's broker is back.
const bridgeConf = `max_queued_messages 100000
connection plant
address 127.0.0.1:%d
topic inspectd/# out 1
cleansession false
remote_clientid line3-bridge
restart_timeout 1
notifications false
`

// plantSubscriber is the SCADA host on the plant's broker: a persistent
// session (clean session off, fixed client id), so what arrives while it
// reconnects waits for it there.
type plantSubscriber struct {
	mu    sync.Mutex
	parts map[string]int // part id -> copies received
}

func subscribePlant(t *testing.T, url string) *plantSubscriber {
	t.Helper()
	s := &plantSubscriber{parts: map[string]int{}}
	topic := alerts.TopicsFor("inspectd", "cam0").Event
	opts := paho.NewClientOptions().AddBroker(url).SetClientID("plant-scada").SetCleanSession(false).
		SetProtocolVersion(4).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(100 * time.Millisecond).SetMaxReconnectInterval(500 * time.Millisecond)
	opts.SetOnConnectHandler(func(c paho.Client) {
		c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
			var ev alerts.Event
			if err := json.Unmarshal(m.Payload(), &ev); err != nil {
				t.Errorf("event is not JSON: %v", err)
				return
			}
			s.mu.Lock()
			s.parts[ev.PartID]++
			s.mu.Unlock()
		}).WaitTimeout(10 * time.Second)
	})
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("plant subscriber: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return s
}

func (s *plantSubscriber) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for p := range s.parts {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Scaling out: the daemon publishes to its line's broker, which bridges to
// the plant's. The plant's broker goes down (stopped, then started again
// with its saved sessions) while parts keep coming: the daemon's events
// are acknowledged by the line's broker, queued in its bridge session, and
// every one reaches the plant's subscriber once the plant's broker is back.
func TestEventsAcrossBridgeOutage(t *testing.T) {
	f := newFixture(t, 41)
	plant := testenv.StartMosquittoWith(t, testenv.MosquittoOptions{Persistence: true})
	line := testenv.StartMosquittoWith(t, testenv.MosquittoOptions{Extra: fmt.Sprintf(bridgeConf, plant.Port)})
	sub := subscribePlant(t, plant.URL())
	hot := filepath.Join(f.dir, "hot")
	want := dropParts(t, hot, 0, 6)
	cfg := f.config(t, "dir:"+hot)
	cfg.Broker = line.URL()
	d, _ := startDaemon(t, cfg)
	waitFor(t, "the first 6 events at the plant's broker", 60*time.Second, func() bool { return len(sub.received()) == 6 })

	plant.Stop()
	want = append(want, dropParts(t, hot, 6, 10)...)
	// The line's broker took them all: nothing waits in the daemon's spool.
	waitFor(t, "16 events acknowledged by the line's broker", 60*time.Second, func() bool {
		return scrape(t, d, "inspectd_events_published_total") == 16 && scrape(t, d, "inspectd_spool_depth") == 0
	})
	if got := len(sub.received()); got != 6 {
		t.Fatalf("%d events at the plant while its broker was down", got)
	}
	plant.Start()
	waitFor(t, "all 16 events at the plant's broker", 60*time.Second, func() bool { return len(sub.received()) == len(want) })
	slices.Sort(want)
	if got := sub.received(); !slices.Equal(got, want) {
		t.Fatalf("plant received %v; want %v", got, want)
	}
	sub.mu.Lock()
	dup := 0
	for _, n := range sub.parts {
		dup += n - 1
	}
	sub.mu.Unlock()
	t.Logf("16 events across the bridge outage, %d duplicate deliveries", dup)
}
