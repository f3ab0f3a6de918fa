package sparkplug

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/internal/mqttx"
	"github.com/inspectd/inspectd/internal/testenv"
)

// fakeControl stands in for the daemon.
type fakeControl struct {
	mu  sync.Mutex
	thr float64
	on  bool
}

func (f *fakeControl) SetThreshold(x float64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.thr = x
	return nil
}
func (f *fakeControl) SetInspecting(b bool) { f.mu.Lock(); f.on = b; f.mu.Unlock() }
func (f *fakeControl) Threshold() float64   { f.mu.Lock(); defer f.mu.Unlock(); return f.thr }
func (f *fakeControl) Inspecting() bool     { f.mu.Lock(); defer f.mu.Unlock(); return f.on }

type rawMsg struct {
	Topic   string `json:"topic"`
	Payload []byte `json:"payload"` // base64 in JSON
}

// collector records every message under a filter, in arrival order.
type collector struct {
	mu   sync.Mutex
	msgs []rawMsg
}

func collect(t *testing.T, url, filter string) *collector {
	t.Helper()
	col := &collector{}
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("collector-%d", time.Now().UnixNano())).
		SetProtocolVersion(4).SetAutoReconnect(false)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("collector connect: %v", tok.Error())
	}
	tok := c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		col.mu.Lock()
		col.msgs = append(col.msgs, rawMsg{m.Topic(), append([]byte(nil), m.Payload()...)})
		col.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("collector subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return col
}

func (c *collector) all() []rawMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]rawMsg(nil), c.msgs...)
}

func (c *collector) count(topic string) int {
	n := 0
	for _, m := range c.all() {
		if m.Topic == topic {
			n++
		}
	}
	return n
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func publish(t *testing.T, url, topic string, payload []byte, retained bool) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("pub-%d", time.Now().UnixNano())).SetProtocolVersion(4)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish(topic, 1, retained, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// tahu runs testdata/tahu.js with Eclipse Tahu's sparkplug-payload.
type tahu struct{ node, modules string }

func requireTahu(t *testing.T) tahu {
	t.Helper()
	node, mods := testenv.RequireNodePackage(t, "sparkplug-payload")
	return tahu{node, mods}
}

func (h tahu) run(t *testing.T, mode string, stdin []byte) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.node, filepath.Join("testdata", "tahu.js"), mode)
	cmd.Env = append(cmd.Environ(), "NODE_PATH="+h.modules)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tahu.js %s: %v\n%s", mode, err, stderr.String())
	}
	return out
}

// encode turns a payload in sparkplug-payload's JSON form into bytes.
func (h tahu) encode(t *testing.T, payload string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(h.run(t, "encode", []byte(payload)))))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Decoded message, as Tahu's decoder returns it (64-bit numbers as strings).
type tahuMsg struct {
	Topic   string `json:"topic"`
	Payload struct {
		Timestamp jnum         `json:"timestamp"`
		Seq       *jnum        `json:"seq"`
		Metrics   []tahuMetric `json:"metrics"`
	} `json:"payload"`
}

type tahuMetric struct {
	Name      *string         `json:"name"`
	Alias     *jnum           `json:"alias"`
	Type      string          `json:"type"`
	Value     json.RawMessage `json:"value"`
	Timestamp *jnum           `json:"timestamp"`
}

// jnum reads a JSON number or a decimal string.
type jnum uint64

func (j *jnum) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := strconv.ParseUint(s, 10, 64)
	*j = jnum(v)
	return err
}

func (h tahu) decode(t *testing.T, msgs []rawMsg) []tahuMsg {
	t.Helper()
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	var keep []rawMsg
	for _, m := range msgs {
		if strings.Contains(m.Topic, "/STATE/") || strings.Contains(m.Topic, "CMD/") {
			continue // JSON, or the tests' own commands
		}
		keep = append(keep, m)
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
	}
	out := h.run(t, "decode", in.Bytes())
	var res []tahuMsg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var m tahuMsg
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("reading tahu.js output: %v\n%s", err, out)
		}
		res = append(res, m)
	}
	if len(res) != len(keep) {
		t.Fatalf("tahu.js decoded %d of %d messages", len(res), len(keep))
	}
	return res
}

func (m tahuMsg) metric(t *testing.T, name string, alias uint64) tahuMetric {
	t.Helper()
	for _, x := range m.Payload.Metrics {
		if (x.Name != nil && *x.Name == name) || (x.Alias != nil && uint64(*x.Alias) == alias && alias != 0) {
			return x
		}
	}
	t.Fatalf("%s: no metric %q (alias %d) in %+v", m.Topic, name, alias, m.Payload.Metrics)
	return tahuMetric{}
}

func (x tahuMetric) str() string { return strings.Trim(string(x.Value), `"`) }

func (x tahuMetric) float(t *testing.T) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(x.str(), 64)
	if err != nil {
		t.Fatalf("metric %v: value %s: %v", x.Name, x.Value, err)
	}
	return f
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func startNode(t *testing.T, brokerURL string, ctl Controller, host string) *Node {
	t.Helper()
	n, err := Start(Config{
		Conn:    mqttx.Conn{Brokers: []string{brokerURL}, KeepAlive: 5 * time.Second, RetryInterval: 50 * time.Millisecond, MaxRetryInterval: 200 * time.Millisecond},
		GroupID: "plant1", EdgeNodeID: "edge1", DeviceID: "cam0", PrimaryHostID: host,
		Version: "test-1", Logger: testLogger(t), Control: ctl,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Close(ctx)
	})
	return n
}

// proxy forwards loopback TCP connections to target and can cut them all,
// as a pulled cable would (the broker then publishes the will).
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.DialTimeout("tcp", target, 2*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *proxy) url() string { return "tcp://" + p.ln.Addr().String() }

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
