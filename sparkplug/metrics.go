package sparkplug

import (
	"math"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/inspectd/inspectd/sparkplug/sparkplugpb"
)

// DataType is a Sparkplug B metric data type (the numbers of the
// specification).
type DataType uint32

// The data types inspectd uses or accepts.
const (
	Int8     DataType = 1
	Int16    DataType = 2
	Int32    DataType = 3
	Int64    DataType = 4
	UInt8    DataType = 5
	UInt16   DataType = 6
	UInt32   DataType = 7
	UInt64   DataType = 8
	Float    DataType = 9
	Double   DataType = 10
	Boolean  DataType = 11
	String   DataType = 12
	DateTime DataType = 13
	Text     DataType = 14
)

// Metric describes one metric: its name, its alias (unique within the edge
// node and all its devices, as the specification requires) and data type.
type Metric struct {
	Name     string
	Alias    uint64
	DataType DataType
	Writable bool // accepted in a command
}

// The edge node's metrics. bdSeq has no alias: NDEATH, which names it,
// comes from the broker and must be readable without the birth.
var (
	MetricBdSeq      = Metric{Name: "bdSeq", DataType: UInt64}
	MetricRebirth    = Metric{Name: "Node Control/Rebirth", Alias: 1, DataType: Boolean, Writable: true}
	MetricSWVersion  = Metric{Name: "Node Info/Software Version", Alias: 2, DataType: String}
	MetricDeviceList = Metric{Name: "Node Info/Cameras", Alias: 3, DataType: String}
)

// The camera's (device's) metrics.
var (
	MetricVerdict        = Metric{Name: "Inspection/Verdict", Alias: 100, DataType: String}
	MetricDefect         = Metric{Name: "Inspection/Defect", Alias: 101, DataType: Boolean}
	MetricScore          = Metric{Name: "Inspection/Score", Alias: 102, DataType: Double}
	MetricThreshold      = Metric{Name: "Inspection/Threshold", Alias: 103, DataType: Double}
	MetricScoreRatio     = Metric{Name: "Inspection/Score Ratio", Alias: 104, DataType: Double}
	MetricPartID         = Metric{Name: "Inspection/Part ID", Alias: 105, DataType: String}
	MetricSeq            = Metric{Name: "Inspection/Seq", Alias: 106, DataType: UInt64}
	MetricLatency        = Metric{Name: "Inspection/Latency ms", Alias: 107, DataType: Double}
	MetricEventID        = Metric{Name: "Inspection/Event ID", Alias: 108, DataType: String}
	MetricDefectX        = Metric{Name: "Inspection/Defect X", Alias: 112, DataType: Double}
	MetricDefectY        = Metric{Name: "Inspection/Defect Y", Alias: 113, DataType: Double}
	MetricDefectArea     = Metric{Name: "Inspection/Defect Area px", Alias: 114, DataType: Double}
	MetricOffShape       = Metric{Name: "Inspection/Off Shape", Alias: 115, DataType: Boolean}
	MetricInspections    = Metric{Name: "Counters/Inspections", Alias: 110, DataType: UInt64}
	MetricDefects        = Metric{Name: "Counters/Defects", Alias: 111, DataType: UInt64}
	MetricState          = Metric{Name: "State", Alias: 120, DataType: String}
	MetricModelID        = Metric{Name: "Model/ID", Alias: 121, DataType: String}
	MetricDrift          = Metric{Name: "Operating/Drift", Alias: 122, DataType: Boolean}
	MetricRejectsHigh    = Metric{Name: "Operating/Rejects High", Alias: 123, DataType: Boolean}
	MetricCfgThreshold   = Metric{Name: "Config/Threshold", Alias: 130, DataType: Double, Writable: true}
	MetricCfgInspection  = Metric{Name: "Config/Inspection Enabled", Alias: 131, DataType: Boolean, Writable: true}
	MetricDeviceRebirth  = Metric{Name: "Device Control/Rebirth", Alias: 132, DataType: Boolean, Writable: true}
	nodeMetrics          = []Metric{MetricRebirth, MetricSWVersion, MetricDeviceList}
	deviceMetrics        = []Metric{MetricVerdict, MetricDefect, MetricScore, MetricThreshold, MetricScoreRatio, MetricPartID, MetricSeq, MetricLatency, MetricEventID, MetricDefectX, MetricDefectY, MetricDefectArea, MetricOffShape, MetricInspections, MetricDefects, MetricState, MetricModelID, MetricDrift, MetricRejectsHigh, MetricCfgThreshold, MetricCfgInspection, MetricDeviceRebirth}
	nodeCommandMetrics   = []Metric{MetricRebirth}
	deviceCommandMetrics = []Metric{MetricCfgThreshold, MetricCfgInspection, MetricDeviceRebirth}
)

// NodeMetrics and DeviceMetrics list what the births carry (for docs and tests).
func NodeMetrics() []Metric   { return append([]Metric(nil), nodeMetrics...) }
func DeviceMetrics() []Metric { return append([]Metric(nil), deviceMetrics...) }

// value builds a metric. birth says whether the name goes in (births carry
// name and alias; data messages the alias alone). A nil v is sent as null.
func (m Metric) value(v any, ts time.Time, birth bool) *pb.Payload_Metric {
	out := &pb.Payload_Metric{Datatype: proto.Uint32(uint32(m.DataType))}
	if birth || m.Alias == 0 {
		out.Name = proto.String(m.Name)
	}
	if m.Alias != 0 {
		out.Alias = proto.Uint64(m.Alias)
	}
	if !ts.IsZero() {
		out.Timestamp = proto.Uint64(millis(ts))
	}
	switch x := v.(type) {
	case nil:
		out.IsNull = proto.Bool(true)
	case bool:
		out.Value = &pb.Payload_Metric_BooleanValue{BooleanValue: x}
	case string:
		out.Value = &pb.Payload_Metric_StringValue{StringValue: x}
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			out.IsNull = proto.Bool(true)
		} else {
			out.Value = &pb.Payload_Metric_DoubleValue{DoubleValue: x}
		}
	case uint64:
		out.Value = &pb.Payload_Metric_LongValue{LongValue: x}
	default: // not used: every metric above is one of the types handled
		out.IsNull = proto.Bool(true)
	}
	return out
}

func millis(t time.Time) uint64 {
	if ms := t.UnixMilli(); ms > 0 {
		return uint64(ms)
	}
	return 0
}
