// Package mqttx keeps one MQTT connection up for the daemon's optional
// dialects (Sparkplug B, Home Assistant discovery). Unlike the event
// publisher (package alerts) they hold no spool: what they send describes the
// present, and after a reconnect they send the present again.
//
// Every connection uses a fresh paho client with paho's own reconnect off, so
// that each connection can carry its own last will (Sparkplug's NDEATH
// carries a birth/death sequence number that changes per connection).
package mqttx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/internal/broker"
)

// Conn says how to reach the broker; the daemon fills it from the same
// settings as its event publisher.
type Conn struct {
	Brokers                   []string // tcp://, ssl://, mqtts:// (mqtt://, tls:// too)
	Username, Password        string
	CAFile, CertFile, KeyFile string
	KeepAlive                 time.Duration // default 30 s
	ConnectTimeout            time.Duration // default 10 s
	RetryInterval             time.Duration // first wait after a failed connect, doubling; default 1 s
	MaxRetryInterval          time.Duration // default 30 s
}

func (c Conn) withDefaults() Conn {
	if c.KeepAlive < time.Second {
		c.KeepAlive = 30 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = time.Second
	}
	if c.MaxRetryInterval < c.RetryInterval {
		c.MaxRetryInterval = max(30*time.Second, c.RetryInterval)
	}
	return c
}

// Will is a last will: published by the broker when the connection dies
// without a DISCONNECT.
type Will struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retained bool
}

// Options builds paho options for one connection.
func (c Conn) Options(clientID string, will *Will) (*mqtt.ClientOptions, error) {
	c = c.withDefaults()
	if len(c.Brokers) == 0 {
		return nil, errors.New("mqtt: no broker URL")
	}
	o := mqtt.NewClientOptions()
	anyTLS := false
	for _, b := range c.Brokers {
		u, err := broker.Parse(b)
		if err != nil {
			return nil, err
		}
		anyTLS = anyTLS || broker.IsTLS(u.Scheme)
		o.AddBroker(u.String())
	}
	o.SetClientID(clientID).SetUsername(c.Username).SetPassword(c.Password).
		SetProtocolVersion(4).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(c.ConnectTimeout).SetKeepAlive(c.KeepAlive).
		SetPingTimeout(min(c.KeepAlive, 10*time.Second)).SetWriteTimeout(10 * time.Second).
		// Handlers must not block paho's router (they hand work to channels).
		SetOrderMatters(false)
	if will != nil {
		o.SetBinaryWill(will.Topic, will.Payload, will.QoS, will.Retained)
	}
	if anyTLS {
		tc, err := broker.TLS{CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile}.Config()
		if err != nil {
			return nil, fmt.Errorf("mqtt: %w", err)
		}
		o.SetTLSConfig(tc)
	}
	return o, nil
}

// Session keeps a connection up until its context ends.
type Session struct {
	Conn     Conn
	ClientID string
	Log      *slog.Logger
	// Will, when set, is called before every connection attempt.
	Will func() *Will
	// OnConnect runs in Run's goroutine after every successful connection;
	// it may block (subscribe, wait for acknowledgements) and should return
	// when ctx ends. The connection is considered down if it returns an error.
	OnConnect func(ctx context.Context, c mqtt.Client) error

	mu   sync.Mutex
	cur  mqtt.Client
	drop chan struct{}
}

// Drop disconnects the current connection and lets Run connect again (with
// a new will); the caller publishes any goodbye first.
func (s *Session) Drop() {
	s.mu.Lock()
	if s.drop == nil {
		s.drop = make(chan struct{}, 1)
	}
	ch := s.drop
	s.mu.Unlock()
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (s *Session) dropCh() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drop == nil {
		s.drop = make(chan struct{}, 1)
	}
	return s.drop
}

// Client is the client of the current connection (nil before the first).
func (s *Session) Client() mqtt.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Run connects, calls OnConnect, waits for the connection to drop and
// connects again with a doubling delay, until ctx ends. It leaves the last
// connection open: the caller says goodbye on it (Client) and disconnects.
func (s *Session) Run(ctx context.Context) {
	conn := s.Conn.withDefaults()
	delay := conn.RetryInterval
	drop := s.dropCh()
	for ctx.Err() == nil {
		var will *Will
		if s.Will != nil {
			will = s.Will()
		}
		opts, err := conn.Options(s.ClientID, will)
		if err != nil {
			s.Log.Error("mqtt: bad connection settings", "err", err)
			return
		}
		lost := make(chan error, 1)
		opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
		c := mqtt.NewClient(opts)
		tok := c.Connect()
		select {
		case <-tok.Done():
		case <-ctx.Done():
			c.Disconnect(0)
			return
		}
		if err := tok.Error(); err != nil {
			s.Log.Warn("mqtt: connecting", "client_id", s.ClientID, "brokers", strings.Join(conn.Brokers, ","), "err", err, "retry_in", delay)
			if !sleep(ctx, delay) {
				return
			}
			delay = min(2*delay, conn.MaxRetryInterval)
			continue
		}
		delay = conn.RetryInterval
		select { // a request for an earlier connection
		case <-drop:
		default:
		}
		s.mu.Lock()
		s.cur = c
		s.mu.Unlock()
		s.Log.Info("mqtt: connected", "client_id", s.ClientID)
		if s.OnConnect != nil {
			if err := s.OnConnect(ctx, c); err != nil {
				if ctx.Err() != nil {
					return
				}
				s.Log.Warn("mqtt: after connecting", "client_id", s.ClientID, "err", err)
				c.Disconnect(0)
				if !sleep(ctx, delay) {
					return
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case err := <-lost:
			s.Log.Warn("mqtt: connection lost; reconnecting", "client_id", s.ClientID, "err", err)
		case <-drop:
			s.Log.Info("mqtt: reconnecting on request", "client_id", s.ClientID)
			c.Disconnect(250) // a clean DISCONNECT: no will
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Wait waits for a token until ctx ends or timeout passes.
func Wait(ctx context.Context, tok mqtt.Token, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("mqtt: no acknowledgement within %v", timeout)
	}
}
