package alerts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// CommandName names a command and its pair of topics,
// <prefix>/<camera>/<name>/set (subscribed) and <prefix>/<camera>/<name>/state
// (retained), in the manner of Frigate's.
type CommandName string

const (
	// CommandThreshold sets the decision threshold: a decimal number.
	CommandThreshold CommandName = "threshold"
	// CommandInspection switches inspection: ON or OFF.
	CommandInspection CommandName = "inspection"
	// CommandModel reloads the model file: RELOAD. Its state is the model id.
	CommandModel CommandName = "model"
)

// CommandNames lists every command, in the order of their topics.
var CommandNames = []CommandName{CommandThreshold, CommandInspection, CommandModel}

const (
	// MaxCommandBytes bounds a command payload: a larger one is refused
	// before it is copied or parsed.
	MaxCommandBytes = 64
	commandBuffer   = 16
	// On and Off are the payloads of the inspection command and state.
	On  = "ON"
	Off = "OFF"
	// Reload is the payload of the model command.
	Reload = "RELOAD"
)

// ErrCommand wraps every reason a command message is refused.
var ErrCommand = errors.New("invalid command")

// Command is one message received on a .../set topic. A message that could
// not be accepted is delivered too, with Err set (wrapping ErrCommand), so
// the daemon counts and logs every command in one place.
type Command struct {
	Name       CommandName
	Threshold  float64 // CommandThreshold: finite (the daemon checks the range)
	Inspecting bool    // CommandInspection
	Time       time.Time
	Err        error
}

// ParseCommand reads the payload of the command name: at most
// MaxCommandBytes; surrounding white space ignored; threshold a finite
// decimal number; inspection ON or OFF; model RELOAD (letters in any case).
func ParseCommand(name CommandName, payload []byte) (Command, error) {
	c := Command{Name: name}
	if len(payload) > MaxCommandBytes {
		return c, fmt.Errorf("%w: %s: %d bytes, at most %d", ErrCommand, name, len(payload), MaxCommandBytes)
	}
	v := string(bytes.TrimSpace(payload))
	switch name {
	case CommandThreshold:
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return c, fmt.Errorf("%w: threshold %q: want a finite decimal number", ErrCommand, v)
		}
		c.Threshold = x
	case CommandInspection:
		switch strings.ToUpper(v) {
		case On:
			c.Inspecting = true
		case Off:
		default:
			return c, fmt.Errorf("%w: inspection %q: want ON or OFF", ErrCommand, v)
		}
	case CommandModel:
		if !strings.EqualFold(v, Reload) {
			return c, fmt.Errorf("%w: model %q: want RELOAD", ErrCommand, v)
		}
	default:
		return c, fmt.Errorf("%w: unknown command %q", ErrCommand, name)
	}
	return c, nil
}

// CommandTopic is where the command name is accepted.
func (t Topics) CommandTopic(name CommandName) string { return t.base + string(name) + "/set" }

// StateTopic is where the state of name is published, retained.
func (t Topics) StateTopic(name CommandName) string { return t.base + string(name) + "/state" }

// subscribeCommands subscribes to each command's own topic (no wildcard:
// only the configured topics are heard).
func (p *Publisher) subscribeCommands(c mqtt.Client) {
	for _, name := range CommandNames {
		topic := p.topics.CommandTopic(name)
		if tok := c.Subscribe(topic, p.qos, p.commandHandler(name, topic)); !tok.WaitTimeout(p.cfg.AckTimeout) || tok.Error() != nil {
			p.log.Error("alerts: subscribing to command topic", "topic", topic, "err", tok.Error())
		}
	}
}

func (p *Publisher) commandHandler(name CommandName, topic string) mqtt.MessageHandler {
	return func(_ mqtt.Client, m mqtt.Message) {
		if m.Topic() != topic {
			return // only the configured topic, whatever else a filter matched
		}
		var cmd Command
		if m.Retained() {
			// A retained command would be applied again at every reconnect.
			cmd = Command{Name: name, Err: fmt.Errorf("%w: %s: retained; publish commands without the retain flag", ErrCommand, name)}
		} else {
			cmd, cmd.Err = ParseCommand(name, m.Payload())
		}
		cmd.Time = time.Now()
		p.trigMu.Lock()
		defer p.trigMu.Unlock()
		if p.trigClosed {
			return
		}
		select {
		case p.commands <- cmd:
		default:
			p.cmdDropped.Add(1)
			p.log.Warn("alerts: command dropped: the daemon is not taking commands fast enough", "command", name)
		}
	}
}

// Commands delivers the messages received on the command topics (when
// Config.Commands is set), refused ones with Err set. It is closed by Close.
func (p *Publisher) Commands() <-chan Command { return p.commands }

// SetState publishes value, retained, on the state topic of name: at once
// when connected, or after the next connection; a value equal to the last
// one sent is not sent again, and every state is sent again after a
// reconnect (the broker may have restarted without persistence).
func (p *Publisher) SetState(name CommandName, value string) {
	p.stateMu.Lock()
	if p.stateSent[name] == value && p.statePending[name] == "" {
		p.stateMu.Unlock()
		return
	}
	p.statePending[name] = value
	p.stateMu.Unlock()
	p.poke(p.statusWake)
}

// resendStates marks every state sent for sending again (after a connect).
func (p *Publisher) resendStates() {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	for name, v := range p.stateSent {
		if _, ok := p.statePending[name]; !ok {
			p.statePending[name] = v
		}
	}
}

// sendStates publishes the pending states; those that fail stay pending.
func (p *Publisher) sendStates(ctx context.Context) {
	p.stateMu.Lock()
	pending := p.statePending
	p.statePending = map[CommandName]string{}
	p.stateMu.Unlock()
	for _, name := range CommandNames {
		v, ok := pending[name]
		if !ok {
			continue
		}
		c := p.client()
		err := p.waitAck(ctx, c, c.Publish(p.topics.StateTopic(name), p.qos, true, v))
		p.stateMu.Lock()
		if err != nil {
			if _, newer := p.statePending[name]; !newer {
				p.statePending[name] = v
			}
		} else {
			p.stateSent[name] = v
		}
		p.stateMu.Unlock()
		if err != nil {
			p.log.Warn("alerts: publishing state", "topic", p.topics.StateTopic(name), "err", err)
		}
	}
}
