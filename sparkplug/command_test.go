package sparkplug

import (
	"errors"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/inspectd/inspectd/sparkplug/sparkplugpb"
)

func enc(t testing.TB, ms ...*pb.Payload_Metric) []byte {
	t.Helper()
	b, err := proto.Marshal(&pb.Payload{Timestamp: proto.Uint64(1), Metrics: ms})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// val sets a metric's value.
type val func(*pb.Payload_Metric)

func named(name string, dt DataType, v val) *pb.Payload_Metric {
	m := &pb.Payload_Metric{Name: proto.String(name)}
	v(m)
	if dt != 0 {
		m.Datatype = proto.Uint32(uint32(dt))
	}
	return m
}

func aliased(alias uint64, dt DataType, v val) *pb.Payload_Metric {
	m := &pb.Payload_Metric{Alias: proto.Uint64(alias)}
	v(m)
	if dt != 0 {
		m.Datatype = proto.Uint32(uint32(dt))
	}
	return m
}

func boolV(b bool) val {
	return func(m *pb.Payload_Metric) { m.Value = &pb.Payload_Metric_BooleanValue{BooleanValue: b} }
}
func dblV(x float64) val {
	return func(m *pb.Payload_Metric) { m.Value = &pb.Payload_Metric_DoubleValue{DoubleValue: x} }
}
func strV(s string) val {
	return func(m *pb.Payload_Metric) { m.Value = &pb.Payload_Metric_StringValue{StringValue: s} }
}
func fltV(x float32) val {
	return func(m *pb.Payload_Metric) { m.Value = &pb.Payload_Metric_FloatValue{FloatValue: x} }
}
func nullV(m *pb.Payload_Metric) { m.IsNull = proto.Bool(true) }

func TestParseCommand(t *testing.T) {
	many := make([]*pb.Payload_Metric, MaxCommandMetrics+1)
	for i := range many {
		many[i] = named(MetricCfgInspection.Name, Boolean, boolV(true))
	}
	withAlias := named(MetricCfgThreshold.Name, Double, dblV(3))
	withAlias.Alias = proto.Uint64(MetricCfgInspection.Alias)
	for _, c := range []struct {
		name    string
		target  Target
		payload []byte
		want    []Command
		err     error  // errors.Is
		errText string // part of the message
	}{
		{"node rebirth", NodeCommand, enc(t, named(MetricRebirth.Name, Boolean, boolV(true))), []Command{{Kind: CmdNodeRebirth}}, nil, ""},
		{"node rebirth by alias", NodeCommand, enc(t, aliased(MetricRebirth.Alias, 0, boolV(true))), []Command{{Kind: CmdNodeRebirth}}, nil, ""},
		{"rebirth false", NodeCommand, enc(t, named(MetricRebirth.Name, Boolean, boolV(false))), nil, ErrCommandMetric, "only true"},
		{"device metric on the node", NodeCommand, enc(t, named(MetricCfgThreshold.Name, Double, dblV(3))), nil, ErrCommandMetric, "not a writable metric"},
		{"threshold", DeviceCommand, enc(t, named(MetricCfgThreshold.Name, Double, dblV(3.25))), []Command{{Kind: CmdThreshold, Threshold: 3.25}}, nil, ""},
		{"threshold as float", DeviceCommand, enc(t, named(MetricCfgThreshold.Name, 0, fltV(2.5))), []Command{{Kind: CmdThreshold, Threshold: 2.5}}, nil, ""},
		{"threshold by alias", DeviceCommand, enc(t, aliased(MetricCfgThreshold.Alias, Double, dblV(9))), []Command{{Kind: CmdThreshold, Threshold: 9}}, nil, ""},
		{"threshold zero", DeviceCommand, enc(t, named(MetricCfgThreshold.Name, Double, dblV(0))), nil, ErrCommandMetric, "not a threshold"},
		{"threshold NaN", DeviceCommand, enc(t, named(MetricCfgThreshold.Name, Double, dblV(math.NaN()))), nil, ErrCommandMetric, "not a threshold"},
		{"threshold +Inf", DeviceCommand, enc(t, named(MetricCfgThreshold.Name, Double, dblV(math.Inf(1)))), nil, ErrCommandMetric, "not a threshold"},
		{"threshold huge", DeviceCommand, enc(t, named(MetricCfgThreshold.Name, Double, dblV(2e9))), nil, ErrCommandMetric, "not a threshold"},
		{"threshold as string", DeviceCommand, enc(t, named(MetricCfgThreshold.Name, 0, strV("3"))), nil, ErrCommandMetric, "want a double"},
		{"threshold wrong datatype", DeviceCommand, enc(t, named(MetricCfgThreshold.Name, Int32, dblV(3))), nil, ErrCommandMetric, "data type 3"},
		{"threshold null", DeviceCommand, enc(t, named(MetricCfgThreshold.Name, Double, nullV)), nil, ErrCommandMetric, "null"},
		{"name and alias disagree", DeviceCommand, enc(t, withAlias), nil, ErrCommandMetric, "alias"},
		{"inspection off", DeviceCommand, enc(t, named(MetricCfgInspection.Name, Boolean, boolV(false))), []Command{{Kind: CmdInspection, Enabled: false}}, nil, ""},
		{"inspection on by alias", DeviceCommand, enc(t, aliased(MetricCfgInspection.Alias, Boolean, boolV(true))), []Command{{Kind: CmdInspection, Enabled: true}}, nil, ""},
		{"device rebirth", DeviceCommand, enc(t, named(MetricDeviceRebirth.Name, Boolean, boolV(true))), []Command{{Kind: CmdDeviceRebirth}}, nil, ""},
		{"read-only metric", DeviceCommand, enc(t, named(MetricScore.Name, Double, dblV(1))), nil, ErrCommandMetric, "not a writable metric"},
		{"unknown alias", DeviceCommand, enc(t, aliased(999, Boolean, boolV(true))), nil, ErrCommandMetric, "alias 999"},
		{"no name no alias", DeviceCommand, enc(t, &pb.Payload_Metric{Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true}}), nil, ErrCommandMetric, "neither"},
		{"invalid UTF-8 name", DeviceCommand, enc(t, named("\xff", Boolean, boolV(true))), nil, ErrCommandMetric, "not UTF-8"},
		{"long name", DeviceCommand, enc(t, named(strings.Repeat("a", MaxMetricName+1), Boolean, boolV(true))), nil, ErrCommandMetric, "at most 256"},
		{"mixed: one good, one bad", DeviceCommand, enc(t, named(MetricScore.Name, Double, dblV(1)), named(MetricCfgThreshold.Name, Double, dblV(4))),
			[]Command{{Kind: CmdThreshold, Threshold: 4}}, ErrCommandMetric, "metric 0"},
		{"too many metrics", DeviceCommand, enc(t, many...), nil, ErrCommandTooLarge, "33 metrics"},
		{"too large", DeviceCommand, make([]byte, MaxCommandBytes+1), nil, ErrCommandTooLarge, "bytes"},
		{"not protobuf", DeviceCommand, []byte{0xff, 0xff, 0xff}, nil, ErrCommandDecode, ""},
		{"empty", DeviceCommand, nil, nil, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseCommand(c.target, c.payload)
			if c.err == nil && err != nil {
				t.Fatalf("error %v", err)
			}
			if c.err != nil && !errors.Is(err, c.err) {
				t.Fatalf("error %v, want %v", err, c.err)
			}
			if err != nil && !strings.Contains(err.Error(), c.errText) {
				t.Errorf("error %q does not say %q", err, c.errText)
			}
			if len(got) != len(c.want) {
				t.Fatalf("commands %+v, want %+v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("command %d = %+v, want %+v", i, got[i], c.want[i])
				}
			}
		})
	}
}

// FuzzParseCommand: whatever arrives, the parser neither panics nor returns
// a command outside its bounds.
func FuzzParseCommand(f *testing.F) {
	f.Add(enc(f, named(MetricRebirth.Name, Boolean, boolV(true))), true)
	f.Add(enc(f, named(MetricCfgThreshold.Name, Double, dblV(3))), false)
	f.Add(enc(f, aliased(MetricCfgInspection.Alias, Boolean, boolV(false)), named(MetricDeviceRebirth.Name, Boolean, boolV(true))), false)
	f.Add([]byte{0x12, 0x05, 0x0a, 0x03, 'a', 'b', 'c'}, false)
	f.Add([]byte{}, true)
	f.Fuzz(func(t *testing.T, payload []byte, node bool) {
		target := DeviceCommand
		if node {
			target = NodeCommand
		}
		cmds, err := ParseCommand(target, payload)
		if len(payload) > MaxCommandBytes && (err == nil || len(cmds) > 0) {
			t.Fatalf("oversized payload accepted")
		}
		if len(cmds) > MaxCommandMetrics {
			t.Fatalf("%d commands", len(cmds))
		}
		for _, c := range cmds {
			switch c.Kind {
			case CmdNodeRebirth:
				if !node {
					t.Fatalf("node rebirth from a DCMD")
				}
			case CmdDeviceRebirth, CmdInspection:
				if node {
					t.Fatalf("%v from an NCMD", c.Kind)
				}
			case CmdThreshold:
				if node || !(c.Threshold > 0 && c.Threshold <= MaxThreshold) {
					t.Fatalf("threshold %v (node %v)", c.Threshold, node)
				}
			default:
				t.Fatalf("unknown kind %v", c.Kind)
			}
		}
	})
}
