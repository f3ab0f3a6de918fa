package sparkplug

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	pb "github.com/inspectd/inspectd/sparkplug/sparkplugpb"
)

// Bounds on a command (NCMD, DCMD) payload: anything from the broker is
// hostile until checked.
const (
	MaxCommandBytes   = 16 << 10
	MaxCommandMetrics = 32
	MaxMetricName     = 256
	// MaxThreshold bounds a threshold set by command (scores are
	// log-likelihood based and far below it).
	MaxThreshold = 1e9
)

// Errors of ParseCommand, for errors.Is.
var (
	ErrCommandTooLarge = errors.New("command payload too large")
	ErrCommandDecode   = errors.New("command payload is not a Sparkplug B payload")
	ErrCommandMetric   = errors.New("command metric refused")
)

// CommandKind is what a command asks for.
type CommandKind int

const (
	// CmdNodeRebirth (NCMD Node Control/Rebirth = true): publish NBIRTH and
	// every DBIRTH again.
	CmdNodeRebirth CommandKind = iota + 1
	// CmdDeviceRebirth (DCMD Device Control/Rebirth = true): publish DBIRTH again.
	CmdDeviceRebirth
	// CmdThreshold (DCMD Config/Threshold, Double): the decision threshold.
	CmdThreshold
	// CmdInspection (DCMD Config/Inspection Enabled, Boolean): pause or resume.
	CmdInspection
)

func (k CommandKind) String() string {
	switch k {
	case CmdNodeRebirth:
		return "node rebirth"
	case CmdDeviceRebirth:
		return "device rebirth"
	case CmdThreshold:
		return "threshold"
	case CmdInspection:
		return "inspection enabled"
	}
	return fmt.Sprintf("command(%d)", int(k))
}

// Command is one validated command.
type Command struct {
	Kind      CommandKind
	Threshold float64 // CmdThreshold: finite, > 0, <= MaxThreshold
	Enabled   bool    // CmdInspection
}

// Target says which message a payload came in: NCMD (the edge node) or DCMD
// (the camera).
type Target int

const (
	NodeCommand Target = iota + 1
	DeviceCommand
)

// ParseCommand decodes an NCMD or DCMD payload and returns its valid
// commands, in order. Metrics are matched by name, or by alias when the name
// is absent (name and alias must agree when both are given); their data
// type, when given, must be the one announced in the birth. Metrics that are
// unknown, read-only, of the wrong type or out of range are left out and
// reported in the error (wrapping ErrCommandMetric) while the valid ones are
// still returned. A payload that is too large or does not decode gives no
// commands and ErrCommandTooLarge or ErrCommandDecode.
func ParseCommand(t Target, payload []byte) ([]Command, error) {
	if len(payload) > MaxCommandBytes {
		return nil, fmt.Errorf("sparkplug: %w: %d bytes (at most %d)", ErrCommandTooLarge, len(payload), MaxCommandBytes)
	}
	var p pb.Payload
	if err := proto.Unmarshal(payload, &p); err != nil {
		return nil, fmt.Errorf("sparkplug: %w: %w", ErrCommandDecode, err)
	}
	if len(p.Metrics) > MaxCommandMetrics {
		return nil, fmt.Errorf("sparkplug: %w: %d metrics (at most %d)", ErrCommandTooLarge, len(p.Metrics), MaxCommandMetrics)
	}
	known := deviceCommandMetrics
	if t == NodeCommand {
		known = nodeCommandMetrics
	}
	var cmds []Command
	var errs []error
	for i, m := range p.Metrics {
		c, err := parseMetric(known, m)
		if err != nil {
			errs = append(errs, fmt.Errorf("sparkplug: %w: metric %d: %w", ErrCommandMetric, i, err))
			continue
		}
		cmds = append(cmds, c)
	}
	return cmds, errors.Join(errs...)
}

func parseMetric(known []Metric, m *pb.Payload_Metric) (Command, error) {
	var def Metric
	found := false
	switch {
	case m.Name != nil:
		name := m.GetName()
		if len(name) > MaxMetricName || !utf8.ValidString(name) {
			return Command{}, fmt.Errorf("name of %d bytes is not UTF-8 of at most %d bytes", len(name), MaxMetricName)
		}
		for _, k := range known {
			if k.Name == name {
				def, found = k, true
			}
		}
		if !found {
			return Command{}, fmt.Errorf("%q is not a writable metric here", name)
		}
		if m.Alias != nil && m.GetAlias() != def.Alias {
			return Command{}, fmt.Errorf("%q comes with alias %d, but its alias is %d", name, m.GetAlias(), def.Alias)
		}
	case m.Alias != nil:
		for _, k := range known {
			if k.Alias == m.GetAlias() {
				def, found = k, true
			}
		}
		if !found {
			return Command{}, fmt.Errorf("alias %d is not a writable metric here", m.GetAlias())
		}
	default:
		return Command{}, errors.New("neither name nor alias")
	}
	if m.Datatype != nil && DataType(m.GetDatatype()) != def.DataType {
		return Command{}, fmt.Errorf("%q: data type %d, want %d", def.Name, m.GetDatatype(), def.DataType)
	}
	if m.GetIsNull() {
		return Command{}, fmt.Errorf("%q: null value", def.Name)
	}
	switch def.DataType {
	case Boolean:
		v, ok := m.Value.(*pb.Payload_Metric_BooleanValue)
		if !ok {
			return Command{}, fmt.Errorf("%q: want a boolean value", def.Name)
		}
		switch def {
		case MetricRebirth, MetricDeviceRebirth:
			if !v.BooleanValue {
				return Command{}, fmt.Errorf("%q: only true asks for a rebirth", def.Name)
			}
			if def == MetricRebirth {
				return Command{Kind: CmdNodeRebirth}, nil
			}
			return Command{Kind: CmdDeviceRebirth}, nil
		case MetricCfgInspection:
			return Command{Kind: CmdInspection, Enabled: v.BooleanValue}, nil
		}
	case Double:
		var x float64
		switch v := m.Value.(type) {
		case *pb.Payload_Metric_DoubleValue:
			x = v.DoubleValue
		case *pb.Payload_Metric_FloatValue:
			x = float64(v.FloatValue)
		default:
			return Command{}, fmt.Errorf("%q: want a double value", def.Name)
		}
		if math.IsNaN(x) || math.IsInf(x, 0) || x <= 0 || x > MaxThreshold {
			return Command{}, fmt.Errorf("%q: %v is not a threshold (want 0 < threshold <= %g)", def.Name, x, float64(MaxThreshold))
		}
		return Command{Kind: CmdThreshold, Threshold: x}, nil
	}
	return Command{}, fmt.Errorf("%q: not a command", def.Name)
}
