package daemon

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/inspectd/inspectd/alerts"
	"github.com/inspectd/inspectd/sparkplug"
)

// MaxThreshold bounds a threshold set by command, over MQTT or Sparkplug
// (scores are far below it); it is the bound the Sparkplug parser applies.
const MaxThreshold = sparkplug.MaxThreshold

// Command results, the label of inspectd_commands_total.
const (
	resultApplied = "applied" // done
	resultRefused = "refused" // invalid payload or value, retained, unknown
	resultFailed  = "failed"  // valid but it did not work (a model that does not load)
)

// commandLoop applies the commands received on the .../set topics until the
// publisher closes their channel. Each is validated, applied through the
// same method a Sparkplug DCMD uses (SetThreshold, SetInspecting, Reload),
// logged and counted; the retained .../state topics follow from
// publishStatus.
func (d *Daemon) commandLoop(cmds <-chan alerts.Command) {
	defer close(d.cmdDone)
	var lim logLimiter
	for c := range cmds {
		result, err := d.applyCommand(c)
		d.met.commands.WithLabelValues(string(c.Name), result).Inc()
		switch {
		case result == resultApplied:
			d.log.Info("MQTT command applied", "command", c.Name, "threshold", c.Threshold, "inspecting", c.Inspecting)
		case lim.allow(time.Now()):
			// Anyone who can publish can send these: at most one warning
			// per logEvery, with the count in between.
			d.log.Warn("MQTT command not applied", "command", c.Name, "result", result, "err", err, "since_last_warning", lim.take())
		}
	}
}

func (d *Daemon) applyCommand(c alerts.Command) (string, error) {
	if c.Err != nil {
		return resultRefused, c.Err
	}
	switch c.Name {
	case alerts.CommandThreshold:
		if err := d.SetThreshold(c.Threshold); err != nil {
			return resultRefused, err
		}
	case alerts.CommandInspection:
		d.SetInspecting(c.Inspecting)
	case alerts.CommandModel:
		if err := d.Reload(); err != nil {
			return resultFailed, err
		}
	default:
		return resultRefused, fmt.Errorf("unknown command %q", c.Name)
	}
	return resultApplied, nil
}

// checkThreshold is the one check of a threshold set at run time.
func checkThreshold(x float64) error {
	if math.IsNaN(x) || math.IsInf(x, 0) || x <= 0 || x > MaxThreshold {
		return fmt.Errorf("threshold %g: must be a finite number above 0 and at most %g", x, MaxThreshold)
	}
	return nil
}

// publishStates puts the commands' states on their retained topics (when
// commands are on): the threshold in force, whether inspection runs, and
// the model in use.
func (d *Daemon) publishStates(st alerts.Status) {
	if !d.cfg.Commands {
		return
	}
	inspecting := alerts.On
	if !d.Inspecting() {
		inspecting = alerts.Off
	}
	d.pub.SetState(alerts.CommandThreshold, strconv.FormatFloat(st.Threshold, 'g', -1, 64))
	d.pub.SetState(alerts.CommandInspection, inspecting)
	d.pub.SetState(alerts.CommandModel, st.ModelID)
}

// logLimiter spaces warnings about messages from the network.
type logLimiter struct {
	mu      sync.Mutex
	at      time.Time
	skipped int
}

const logEvery = 10 * time.Second

func (l *logLimiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.at.IsZero() && now.Sub(l.at) < logEvery {
		l.skipped++
		return false
	}
	l.at = now
	return true
}

// take returns the warnings skipped since the last one and resets the count.
func (l *logLimiter) take() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.skipped
	l.skipped = 0
	return n
}
