package demo

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"

	pb "github.com/inspectd/inspectd/sparkplug/sparkplugpb"
)

// sparkplugPrinter prints the Sparkplug B stream as a SCADA host would see
// it: births name the metrics, later messages are resolved through the
// aliases the births announced.
type sparkplugPrinter struct {
	w     io.Writer
	mu    sync.Mutex
	names map[uint64]string
	count map[string]int
}

func newSparkplugPrinter(w io.Writer) *sparkplugPrinter {
	return &sparkplugPrinter{w: w, names: map[uint64]string{}, count: map[string]int{}}
}

func (p *sparkplugPrinter) handle(_ paho.Client, m paho.Message) {
	parts := strings.Split(m.Topic(), "/")
	if len(parts) < 4 || strings.HasSuffix(parts[2], "CMD") {
		return
	}
	kind := parts[2]
	var pl pb.Payload
	if err := proto.Unmarshal(m.Payload(), &pl); err != nil {
		fmt.Fprintf(p.w, "sparkplug %s: undecodable payload: %v\n", m.Topic(), err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count[kind]++
	var vals []string
	for _, x := range pl.Metrics {
		name := x.GetName()
		if x.Name != nil && x.Alias != nil {
			p.names[x.GetAlias()] = name
		} else if x.Name == nil {
			name = p.names[x.GetAlias()]
		}
		vals = append(vals, name+"="+metricText(x))
	}
	seq := "-"
	if pl.Seq != nil {
		seq = fmt.Sprint(pl.GetSeq())
	}
	// Births are long: print their size; data in full.
	if kind == "DBIRTH" {
		fmt.Fprintf(p.w, "sparkplug %-6s seq %3s  %d metrics with aliases\n", kind, seq, len(vals))
		return
	}
	fmt.Fprintf(p.w, "sparkplug %-6s seq %3s  %s\n", kind, seq, strings.Join(vals, "  "))
}

func metricText(x *pb.Payload_Metric) string {
	if x.GetIsNull() {
		return "null"
	}
	switch v := x.Value.(type) {
	case *pb.Payload_Metric_StringValue:
		return fmt.Sprintf("%q", v.StringValue)
	case *pb.Payload_Metric_DoubleValue:
		return fmt.Sprintf("%.4g", v.DoubleValue)
	case *pb.Payload_Metric_BooleanValue:
		return fmt.Sprint(v.BooleanValue)
	case *pb.Payload_Metric_LongValue:
		return fmt.Sprint(v.LongValue)
	}
	return "?"
}

// waitFor waits until a message of kind arrived, at most timeout.
func (p *sparkplugPrinter) waitFor(kind string, timeout time.Duration) {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		p.mu.Lock()
		n := p.count[kind]
		p.mu.Unlock()
		if n > 0 {
			return
		}
	}
}

func (p *sparkplugPrinter) summary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var kinds []string
	for k := range p.count {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var s []string
	for _, k := range kinds {
		s = append(s, fmt.Sprintf("%d %s", p.count[k], k))
	}
	return strings.Join(s, ", ")
}
