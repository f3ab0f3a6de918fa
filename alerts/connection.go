// The broker connection: one paho client per connection, made by
// connectLoop, with the subscriptions renewed on every connect.

package alerts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/inspectd/inspectd/internal/redact"
)

// connectOnce makes one connection attempt over all brokers, with a new client.
func (p *Publisher) connectOnce(ctx context.Context) error {
	c := mqtt.NewClient(p.opts)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		c.Disconnect(0)
		return fmt.Errorf("alerts: connecting to %s: %w", redact.String(strings.Join(p.cfg.Brokers, ", ")), ctx.Err())
	}
	err := tok.Error()
	if err == nil {
		p.cur.Store(&clientRef{c}) // onConnect may have done it already
		return nil
	}
	err = p.explainConnectError(tok.(*mqtt.ConnectToken).ReturnCode(), err)
	p.setErr(err)
	return err
}

func (p *Publisher) explainConnectError(rc byte, err error) error {
	where := fmt.Sprintf("alerts: connecting to %s as client %q", redact.String(strings.Join(p.cfg.Brokers, ", ")), p.cfg.ClientID)
	switch rc {
	case packets.ErrRefusedBadUsernameOrPassword, packets.ErrRefusedNotAuthorised:
		user := p.cfg.Username
		if user == "" {
			user = "(none)"
		}
		return fmt.Errorf("%s: %w: %w: check Username (%s) and Password, and the broker's password file and ACL", where, ErrRefused, err, user)
	case packets.ErrRefusedIDRejected:
		return fmt.Errorf("%s: %w: %w: the broker rejected ClientID", where, ErrRefused, err)
	case packets.ErrRefusedBadProtocolVersion:
		return fmt.Errorf("%s: %w: %w: the broker does not speak MQTT 3.1.1", where, ErrRefused, err)
	}
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		alert     tls.AlertError
		record    tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknownCA):
		return fmt.Errorf("%s: %w: %w: the broker's certificate is not signed by CAFile (%q)", where, ErrTLS, err, p.cfg.CAFile)
	case errors.As(err, &hostErr):
		return fmt.Errorf("%s: %w: %w: the broker's certificate does not name this host", where, ErrTLS, err)
	case errors.As(err, &invalid):
		return fmt.Errorf("%s: %w: %w", where, ErrTLS, err)
	case errors.As(err, &alert):
		return fmt.Errorf("%s: %w: %w: the broker rejected our certificate (CertFile %q)", where, ErrTLS, err, p.cfg.CertFile)
	case errors.As(err, &record):
		return fmt.Errorf("%s: %w: %w: the broker port does not speak TLS (use tcp://)", where, ErrTLS, err)
	}
	return fmt.Errorf("%s: %w", where, err)
}

func isPermanent(err error) bool { return errors.Is(err, ErrRefused) || errors.Is(err, ErrTLS) }

// connectLoop (re)connects whenever poked: after a failed first attempt and
// after every connection loss, retrying with a doubling delay from
// RetryInterval up to MaxReconnectInterval.
func (p *Publisher) connectLoop() {
	for {
		select {
		case <-p.runCtx.Done():
			return
		case <-p.reconnect:
		}
		delay := p.cfg.RetryInterval
		for !p.client().IsConnectionOpen() {
			err := p.connectOnce(p.runCtx)
			if err == nil {
				break
			}
			if p.runCtx.Err() != nil {
				return
			}
			if isPermanent(err) {
				p.log.Error("alerts: broker refuses this configuration; still retrying", "err", err, "retry_in", delay)
			} else {
				p.log.Debug("alerts: broker still unreachable", "err", err, "retry_in", delay)
			}
			select {
			case <-p.runCtx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, p.cfg.MaxReconnectInterval)
		}
	}
}

// onConnect runs (in its own goroutine) after every successful connection,
// first or re-established.
func (p *Publisher) onConnect(c mqtt.Client) {
	p.cur.Store(&clientRef{c})
	p.connMu.Lock()
	close(p.connCh)
	p.connCh = make(chan struct{})
	p.connMu.Unlock()
	p.lastErr.Store(nil)
	p.log.Info("alerts: connected to MQTT broker", "client_id", p.cfg.ClientID)

	// A clean session forgets subscriptions, so subscribe on every connect.
	if tok := c.Subscribe(p.topics.Trigger, p.qos, p.onTrigger); !tok.WaitTimeout(p.cfg.AckTimeout) || tok.Error() != nil {
		p.log.Error("alerts: subscribing to trigger topic", "topic", p.topics.Trigger, "err", tok.Error())
	}
	if tok := c.Subscribe(p.topics.Feedback, p.qos, p.onFeedback); !tok.WaitTimeout(p.cfg.AckTimeout) || tok.Error() != nil {
		p.log.Error("alerts: subscribing to feedback topic", "topic", p.topics.Feedback, "err", tok.Error())
	}
	if p.cfg.Commands {
		p.subscribeCommands(c)
	}
	p.resendStates()
	tok := c.Publish(p.topics.Availability, p.qos, true, availabilityOnline)
	if !tok.WaitTimeout(p.cfg.AckTimeout) || tok.Error() != nil {
		p.log.Error("alerts: publishing availability", "err", tok.Error())
	}
	p.statusMu.Lock()
	if p.pending == nil && p.lastStatus != nil {
		s := *p.lastStatus
		p.pending = &s
	}
	p.statusMu.Unlock()
	p.poke(p.statusWake)
}

func (p *Publisher) onConnectionLost(c mqtt.Client, err error) {
	if p.client() != c {
		return // an older connection's client
	}
	p.setErr(fmt.Errorf("connection lost: %w", err))
	p.log.Warn("alerts: MQTT connection lost; reconnecting", "err", err)
	p.poke(p.reconnect)
}

func (p *Publisher) waitConnected(ctx context.Context) bool {
	for !p.client().IsConnectionOpen() {
		p.connMu.Lock()
		ch := p.connCh
		p.connMu.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		case <-time.After(time.Second): // in case a connection slipped between the check and the wait
		}
	}
	return true
}

func (p *Publisher) setErr(err error) {
	s := err.Error()
	p.lastErr.Store(&s)
}

// Connected reports whether the connection to the broker is up now.
func (p *Publisher) Connected() bool { return p.client().IsConnectionOpen() }

// LastError is the last connection or send error, empty once reconnected.
func (p *Publisher) LastError() string {
	if s := p.lastErr.Load(); s != nil {
		return *s
	}
	return ""
}
