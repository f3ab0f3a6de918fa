package sparkplug

import (
	"context"
	"os"
	"path/filepath"

	"fmt"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/alerts"
	"github.com/inspectd/inspectd/internal/mqttx"
	"github.com/inspectd/inspectd/internal/testenv"
	"github.com/inspectd/inspectd/sparkplug/sparkplugtest"
)

// TestNodeAgainstTahu runs an edge node against a real mosquitto and checks
// everything it publishes with Eclipse Tahu's JavaScript decoder; the
// commands (rebirth, threshold, inspection off) are encoded by Tahu too.
func TestNodeAgainstTahu(t *testing.T) {
	h := sparkplugtest.Require(t)
	b := testenv.StartMosquitto(t)
	col := collect(t, b.URL(), Namespace+"/#")
	ctl := &fakeControl{thr: 7.5, on: true}
	n := startNode(t, b.URL(), ctl, "")
	tp := n.Topics()
	eventually(t, 10*time.Second, "DBIRTH", func() bool { return col.count(tp.DBIRTH) == 1 })

	n.StatusChanged(alerts.Status{State: alerts.StateRunning, ModelID: "model-a"})
	const parts = 300 // more than 256 messages: seq wraps
	defects, defectsAt99 := 0, 0
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	for i := 1; i <= parts; i++ {
		ev := alerts.Event{ID: fmt.Sprintf("ev-%d", i), Time: t0.Add(time.Duration(i) * time.Second), Seq: uint64(i),
			PartID: fmt.Sprintf("part-%d", i), Score: float64(i % 10), Threshold: 7.5, Verdict: alerts.VerdictOK, LatencyMS: 12.5}
		if ev.Score > ev.Threshold {
			ev.Verdict = alerts.VerdictDefect
			ev.DefectLocation = &alerts.Location{PeakX: float64(i), PeakY: 2.5, AreaPx: 300}
			defects++
		}
		if i == 99 {
			defectsAt99 = defects
			ev.OffShape = "part of 300x100 px has aspect ratio 3 ..."
		}
		n.Inspected(ev, nil)
		if i%100 == 0 { // a line makes a few parts a second, not bursts of 300
			eventually(t, 10*time.Second, "send queue drained", func() bool { return len(n.out) == 0 })
		}
	}
	eventually(t, 10*time.Second, "every DDATA", func() bool { return col.count(tp.DDATA) == parts+1 })
	if d := n.Stats().MessagesDropped; d != 0 {
		t.Fatalf("%d messages dropped", d)
	}

	// Commands, encoded by Tahu.
	publish(t, b.URL(), tp.NCMD, h.Encode(t, `{"timestamp":1,"metrics":[{"name":"Node Control/Rebirth","type":"Boolean","value":true}]}`), false)
	eventually(t, 10*time.Second, "rebirth", func() bool { return col.count(tp.DBIRTH) == 2 })
	publish(t, b.URL(), tp.DCMD, h.Encode(t, `{"timestamp":2,"metrics":[{"name":"Config/Threshold","type":"Double","value":12.5}]}`), false)
	eventually(t, 10*time.Second, "threshold 12.5", func() bool { return ctl.Threshold() == 12.5 })
	publish(t, b.URL(), tp.DCMD, h.Encode(t, `{"timestamp":3,"metrics":[{"alias":131,"type":"Boolean","value":false}]}`), false)
	eventually(t, 10*time.Second, "inspection off", func() bool { return !ctl.Inspecting() })
	// Refused: out of range, read-only, wrong type, not protobuf.
	refusedBefore := n.Stats().Refused
	publish(t, b.URL(), tp.DCMD, h.Encode(t, `{"timestamp":4,"metrics":[{"name":"Config/Threshold","type":"Double","value":-1}]}`), false)
	publish(t, b.URL(), tp.DCMD, h.Encode(t, `{"timestamp":5,"metrics":[{"name":"Inspection/Score","type":"Double","value":1}]}`), false)
	publish(t, b.URL(), tp.DCMD, h.Encode(t, `{"timestamp":6,"metrics":[{"name":"Config/Threshold","type":"String","value":"9"}]}`), false)
	publish(t, b.URL(), tp.NCMD, []byte("\xff\xff\xff not protobuf"), false)
	eventually(t, 10*time.Second, "4 refusals", func() bool { return n.Stats().Refused == refusedBefore+4 })
	if got := ctl.Threshold(); got != 12.5 {
		t.Errorf("threshold after refused commands = %v, want 12.5", got)
	}
	// The line rejects too many: state, drift and the reject-rate check in one DDATA.
	n.StatusChanged(alerts.Status{State: alerts.StateDegraded, ModelID: "model-a", Drift: true, RejectsHigh: true})
	eventually(t, 10*time.Second, "status DDATA", func() bool { return col.count(tp.DDATA) == parts+4 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "DDEATH and NDEATH", func() bool { return col.count(tp.NDEATH) == 1 && col.count(tp.DDEATH) == 1 })

	msgs := h.Decode(t, col.all())
	var nbirths, dbirths, ddata []sparkplugtest.Msg
	var last uint64
	for i, m := range msgs {
		kind := strings.Split(m.Topic, "/")[2]
		switch kind {
		case "NBIRTH":
			nbirths = append(nbirths, m)
		case "DBIRTH":
			dbirths = append(dbirths, m)
		case "DDATA":
			ddata = append(ddata, m)
		}
		// seq: 0 at NBIRTH, then +1 per message, wrapping after 255;
		// NDEATH has none.
		switch {
		case kind == "NDEATH":
			if m.Payload.Seq != nil {
				t.Errorf("NDEATH carries seq %d", *m.Payload.Seq)
			}
		case m.Payload.Seq == nil:
			t.Fatalf("message %d (%s) has no seq", i, m.Topic)
		case kind == "NBIRTH":
			if *m.Payload.Seq != 0 {
				t.Errorf("NBIRTH seq %d, want 0", *m.Payload.Seq)
			}
			last = 0
		default:
			if want := (last + 1) % 256; uint64(*m.Payload.Seq) != want {
				t.Fatalf("message %d (%s): seq %d, want %d", i, m.Topic, *m.Payload.Seq, want)
			}
			last = uint64(*m.Payload.Seq)
		}
		if m.Payload.Timestamp == 0 {
			t.Errorf("message %d (%s) without timestamp", i, m.Topic)
		}
	}
	if len(nbirths) != 2 || len(dbirths) != 2 {
		t.Fatalf("%d NBIRTH and %d DBIRTH, want 2 each", len(nbirths), len(dbirths))
	}
	if last < 256 && len(ddata) < 256 {
		t.Fatalf("only %d DDATA: seq never wrapped", len(ddata))
	}

	// NBIRTH: bdSeq, rebirth control, version; the rebirth keeps the bdSeq.
	for _, nb := range nbirths {
		bd := nb.Metric(t, "bdSeq", 0)
		if bd.Type != "UInt64" || bd.Str() != "0" {
			t.Errorf("NBIRTH bdSeq = %s %s, want UInt64 0", bd.Type, bd.Value)
		}
		rb := nb.Metric(t, MetricRebirth.Name, 0)
		if rb.Type != "Boolean" || rb.Str() != "false" || rb.Alias == nil || uint64(*rb.Alias) != MetricRebirth.Alias {
			t.Errorf("NBIRTH rebirth metric = %+v", rb)
		}
		if v := nb.Metric(t, MetricSWVersion.Name, 0); v.Str() != "test-1" {
			t.Errorf("software version %s", v.Value)
		}
	}
	// DBIRTH: every metric with name, alias and type; before any
	// inspection the inspection metrics are null.
	for i, db := range dbirths {
		for _, def := range DeviceMetrics() {
			m := db.Metric(t, def.Name, 0)
			if m.Alias == nil || uint64(*m.Alias) != def.Alias || m.Type != dataTypeName[def.DataType] {
				t.Errorf("DBIRTH %d %q: alias %v type %s, want %d %s", i, def.Name, m.Alias, m.Type, def.Alias, dataTypeName[def.DataType])
			}
		}
	}
	if v := dbirths[0].Metric(t, MetricScore.Name, 0); string(v.Value) != "null" {
		t.Errorf("first DBIRTH score = %s, want null", v.Value)
	}
	if v := dbirths[0].Metric(t, MetricCfgThreshold.Name, 0); v.Float(t) != 7.5 {
		t.Errorf("first DBIRTH Config/Threshold = %s", v.Value)
	}
	if v := dbirths[1].Metric(t, MetricInspections.Name, 0); v.Str() != fmt.Sprint(parts) {
		t.Errorf("DBIRTH after rebirth: inspections %s, want %d", v.Value, parts)
	}
	if v := dbirths[1].Metric(t, MetricScore.Name, 0); v.Float(t) != float64(parts%10) {
		t.Errorf("DBIRTH after rebirth: score %s", v.Value)
	}
	if v := dbirths[1].Metric(t, MetricState.Name, 0); alerts.State(v.Str()) != alerts.StateRunning {
		t.Errorf("DBIRTH after rebirth: state %s", v.Value)
	}

	// DDATA: aliases only; values as inspected.
	for i, d := range ddata {
		for _, m := range d.Payload.Metrics {
			if m.Name != nil || m.Alias == nil {
				t.Fatalf("DDATA %d: metric %+v: want alias without name", i, m)
			}
		}
	}
	state := ddata[0]
	if v := state.Metric(t, "", MetricState.Alias); alerts.State(v.Str()) != alerts.StateRunning || v.Type != "String" {
		t.Errorf("state DDATA %+v", v)
	}
	if v := state.Metric(t, "", MetricModelID.Alias); v.Str() != "model-a" {
		t.Errorf("model DDATA %s", v.Value)
	}
	d99 := ddata[99] // the 99th inspection: score 9 > 7.5
	for _, c := range []struct {
		m    Metric
		want string
	}{
		{MetricVerdict, "defect"}, {MetricDefect, "true"}, {MetricScore, "9"}, {MetricThreshold, "7.5"}, {MetricScoreRatio, "1.2"},
		{MetricPartID, "part-99"}, {MetricSeq, "99"}, {MetricLatency, "12.5"}, {MetricEventID, "ev-99"}, {MetricInspections, "99"},
		{MetricDefects, fmt.Sprint(defectsAt99)}, {MetricDefectX, "99"}, {MetricDefectY, "2.5"}, {MetricDefectArea, "300"},
		{MetricOffShape, "true"},
	} {
		v := d99.Metric(t, "", c.m.Alias)
		if v.Str() != c.want || v.Type != dataTypeName[c.m.DataType] {
			t.Errorf("DDATA 99 %s = %s %s, want %s %s", c.m.Name, v.Type, v.Value, dataTypeName[c.m.DataType], c.want)
		}
		if v.Timestamp == nil || uint64(*v.Timestamp) != uint64(t0.Add(99*time.Second).UnixMilli()) {
			t.Errorf("DDATA 99 %s timestamp %v", c.m.Name, v.Timestamp)
		}
	}
	if v := ddata[1].Metric(t, "", MetricDefectX.Alias); string(v.Value) != "null" || v.Type != "Double" {
		t.Errorf("a good part's defect X: %s %s, want Double null", v.Type, v.Value)
	}
	if v := ddata[1].Metric(t, "", MetricOffShape.Alias); v.Str() != "false" || v.Type != "Boolean" {
		t.Errorf("a part of the right shape: off shape %s %s, want Boolean false", v.Type, v.Value)
	}
	if v := ddata[parts].Metric(t, "", MetricDefects.Alias); v.Str() != fmt.Sprint(defects) {
		t.Errorf("defects counter %s, want %d", v.Value, defects)
	}
	after := ddata[parts+1:]
	if len(after) != 3 {
		t.Fatalf("%d DDATA after the commands, want 3 (threshold, inspection, status)", len(after))
	}
	for _, c := range []struct {
		m    Metric
		want string
	}{{MetricState, "degraded"}, {MetricDrift, "true"}, {MetricRejectsHigh, "true"}} {
		if v := after[2].Metric(t, "", c.m.Alias); v.Str() != c.want || v.Type != dataTypeName[c.m.DataType] {
			t.Errorf("status DDATA %s = %s %s, want %s", c.m.Name, v.Type, v.Value, c.want)
		}
	}
	if v := dbirths[1].Metric(t, MetricRejectsHigh.Name, 0); v.Str() != "false" {
		t.Errorf("DBIRTH rejects high %s, want false", v.Value)
	}
	if v := after[0].Metric(t, "", MetricCfgThreshold.Alias); v.Float(t) != 12.5 {
		t.Errorf("threshold DDATA %s", v.Value)
	}
	if v := after[1].Metric(t, "", MetricCfgInspection.Alias); v.Str() != "false" {
		t.Errorf("inspection DDATA %s", v.Value)
	}
	// Goodbye: DDEATH (with the next seq, checked above), then NDEATH.
	dd, nd := msgs[len(msgs)-2], msgs[len(msgs)-1]
	if dd.Topic != tp.DDEATH || nd.Topic != tp.NDEATH || nd.Metric(t, "bdSeq", 0).Str() != "0" {
		t.Errorf("last messages %s, %s %+v, want DDEATH, then NDEATH with bdSeq 0", dd.Topic, nd.Topic, nd.Payload.Metrics)
	}
}

var dataTypeName = map[DataType]string{UInt64: "UInt64", Double: "Double", Boolean: "Boolean", String: "String"}

// TestNodeWillAndReconnect cuts the node's connection: the broker publishes
// the NDEATH will with the bdSeq of the NBIRTH, and the node births again
// with the next bdSeq.
func TestNodeWillAndReconnect(t *testing.T) {
	h := sparkplugtest.Require(t)
	b := testenv.StartMosquitto(t)
	px := startProxy(t, fmt.Sprintf("127.0.0.1:%d", b.Port))
	col := collect(t, b.URL(), Namespace+"/#")
	// A retained command (left on the broker by a careless client) would
	// fire at every connection: it is refused.
	tp := TopicsFor("plant1", "edge1", "cam0", "")
	publish(t, b.URL(), tp.DCMD, h.Encode(t, `{"timestamp":7,"metrics":[{"name":"Config/Threshold","type":"Double","value":3}]}`), true)
	ctl := &fakeControl{thr: 1, on: true}
	n := startNode(t, px.url(), ctl, "")
	eventually(t, 10*time.Second, "first birth", func() bool { return col.count(tp.DBIRTH) == 1 })
	eventually(t, 10*time.Second, "retained command refused", func() bool { return n.Stats().Refused == 1 })
	px.cut()
	eventually(t, 10*time.Second, "will and second birth", func() bool { return col.count(tp.NDEATH) == 1 && col.count(tp.DBIRTH) == 2 })
	eventually(t, 10*time.Second, "retained command refused again", func() bool { return n.Stats().Refused == 2 })
	if ctl.Threshold() != 1 {
		t.Errorf("a retained command changed the threshold to %v", ctl.Threshold())
	}

	var got []string
	for _, m := range h.Decode(t, col.all()) {
		kind := strings.Split(m.Topic, "/")[2]
		if kind == "NBIRTH" || kind == "NDEATH" {
			got = append(got, kind+":"+m.Metric(t, "bdSeq", 0).Str())
		}
	}
	want := "NBIRTH:0 NDEATH:0 NBIRTH:1"
	if strings.Join(got, " ") != want {
		t.Errorf("births and deaths %q, want %q", strings.Join(got, " "), want)
	}
}

// TestNodeWaitsForPrimaryHost: no birth before the primary host's STATE says
// online; when it goes offline the node dies (NDEATH) and reconnects, and
// births again on the next online.
func TestNodeWaitsForPrimaryHost(t *testing.T) {
	h := sparkplugtest.Require(t)
	b := testenv.StartMosquitto(t)
	col := collect(t, b.URL(), Namespace+"/#")
	n := startNode(t, b.URL(), &fakeControl{thr: 1, on: true}, "scada1")
	tp := n.Topics()
	eventually(t, 10*time.Second, "subscribed", func() bool { return n.Stats().Subscribed })
	// A stranger's STATE and a malformed one change nothing.
	publish(t, b.URL(), Namespace+"/STATE/other", []byte(`{"online":true,"timestamp":1}`), true)
	publish(t, b.URL(), tp.State, []byte(`online`), false)
	publish(t, b.URL(), tp.State, []byte(`{"online":true,"timestamp":100}`), true)
	eventually(t, 10*time.Second, "birth after online", func() bool { return col.count(tp.DBIRTH) == 1 })
	publish(t, b.URL(), tp.State, []byte(`{"online":false,"timestamp":200}`), true)
	eventually(t, 10*time.Second, "NDEATH and reconnection", func() bool {
		return col.count(tp.NDEATH) == 1 && n.Stats().Subscribed && n.Stats().BdSeq == 1
	})
	if n.Stats().Born {
		t.Fatal("born while the primary host is offline")
	}
	publish(t, b.URL(), tp.State, []byte(`{"online":true,"timestamp":300}`), true)
	eventually(t, 10*time.Second, "second birth", func() bool { return col.count(tp.DBIRTH) == 2 })

	var seen []string
	for _, m := range col.all() {
		parts := strings.Split(m.Topic, "/")
		switch {
		case m.Topic == tp.State:
			seen = append(seen, "STATE:"+string(m.Payload))
		case parts[2] == "NBIRTH" || parts[2] == "NDEATH":
			seen = append(seen, parts[2])
		}
	}
	want := []string{"STATE:online", `STATE:{"online":true,"timestamp":100}`, "NBIRTH", `STATE:{"online":false,"timestamp":200}`, "NDEATH",
		`STATE:{"online":true,"timestamp":300}`, "NBIRTH"}
	if strings.Join(seen, " | ") != strings.Join(want, " | ") {
		t.Errorf("order:\n got %q\nwant %q", seen, want)
	}
	var bd []string
	for _, m := range h.Decode(t, col.all()) {
		if k := strings.Split(m.Topic, "/")[2]; k == "NBIRTH" || k == "NDEATH" {
			bd = append(bd, k+":"+m.Metric(t, "bdSeq", 0).Str())
		}
	}
	if got := strings.Join(bd, " "); got != "NBIRTH:0 NDEATH:0 NBIRTH:1" {
		t.Errorf("bdSeq %q", got)
	}
}

// stalledClient is a connection whose writes never finish (a broker that
// stopped reading).
type stalledClient struct {
	mqtt.Client
	block chan struct{}
}

func (c stalledClient) IsConnectionOpen() bool { return true }
func (c stalledClient) Publish(string, byte, bool, any) mqtt.Token {
	<-c.block
	return doneToken{}
}

type doneToken struct{}

func (doneToken) Wait() bool                     { return true }
func (doneToken) WaitTimeout(time.Duration) bool { return true }
func (doneToken) Done() <-chan struct{}          { c := make(chan struct{}); close(c); return c }
func (doneToken) Error() error                   { return nil }

// TestStalledBrokerDoesNotStallInspection: with the connection stuck, each
// inspection still returns at once; what does not fit the queue is dropped
// and counted.
func TestStalledBrokerDoesNotStallInspection(t *testing.T) {
	block := make(chan struct{})
	n := &Node{cfg: Config{Control: &fakeControl{thr: 1, on: true}}, log: testLogger(t), topics: TopicsFor("g", "n", "d", ""),
		born: true, client: stalledClient{block: block}, out: make(chan outMsg, outBuffer), sent: make(chan struct{})}
	go n.sender()
	defer func() {
		close(block)
		n.mu.Lock()
		n.outClosed = true
		close(n.out)
		n.mu.Unlock()
		<-n.sent
	}()
	start := time.Now()
	const parts = 3 * outBuffer
	for i := range parts {
		n.Inspected(alerts.Event{Seq: uint64(i), Score: 1, Threshold: 2, Verdict: alerts.VerdictOK}, nil)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("%d inspections took %v with a stalled broker", parts, el)
	}
	// One message is stuck in Publish, outBuffer wait; the rest is dropped.
	if d := n.Stats().MessagesDropped; d < parts-outBuffer-1 || d > parts-outBuffer {
		t.Errorf("%d dropped of %d, want %d or %d", d, parts, parts-outBuffer-1, parts-outBuffer)
	}
}

// TestBdSeqKeptAcrossRestarts: with a bdSeq file the next start goes on
// from the last connection's bdSeq + 1 (wrapping after 255); a damaged
// file means 0.
func TestBdSeqKeptAcrossRestarts(t *testing.T) {
	b := testenv.StartMosquitto(t)
	file := filepath.Join(t.TempDir(), "sparkplug.bdseq")
	for _, c := range []struct {
		name    string
		content string // written before the start; "" leaves the file as it is
		want    uint64
	}{
		{"no file", "", 0},
		{"after one connection", "", 1},
		{"wraps", "255\n", 255},
		{"after 255", "", 0},
		{"damaged", "banana", 0},
		{"too large", "256", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.content != "" {
				if err := os.WriteFile(file, []byte(c.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			n, err := Start(Config{Conn: mqttx.Conn{Brokers: []string{b.URL()}}, GroupID: "g", EdgeNodeID: "e", DeviceID: "d",
				BdSeqFile: file, Logger: testLogger(t), Control: &fakeControl{thr: 1, on: true}})
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "birth", func() bool { return n.Stats().Born })
			if got := n.Stats().BdSeq; got != c.want {
				t.Errorf("bdSeq %d, want %d", got, c.want)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := n.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(file); strings.TrimSpace(string(b)) != fmt.Sprint((c.want+1)%256) {
				t.Errorf("file holds %q, want %d", b, (c.want+1)%256)
			}
		})
	}
}
