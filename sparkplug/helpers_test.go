package sparkplug

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/internal/mqttx"
	"github.com/inspectd/inspectd/sparkplug/sparkplugtest"
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

type rawMsg = sparkplugtest.Raw

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
		col.msgs = append(col.msgs, rawMsg{Topic: m.Topic(), Payload: append([]byte(nil), m.Payload()...)})
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
