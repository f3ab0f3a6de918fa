package sparkplug

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"

	"github.com/inspectd/inspectd/alerts"
	"github.com/inspectd/inspectd/internal/mqttx"
	pb "github.com/inspectd/inspectd/sparkplug/sparkplugpb"
)

// Namespace is the first topic level of Sparkplug B.
const Namespace = "spBv1.0"

const (
	commandBuffer = 16
	// outBuffer bounds the messages waiting for the connection: a stalled
	// broker must not stall the inspection loop, so beyond it DDATA is
	// dropped (and counted); a host sees the seq gap and asks for a rebirth.
	outBuffer     = 256
	maxStateBytes = 1024
	ackTimeout    = 10 * time.Second
)

// Controller is what commands act on (the daemon).
type Controller interface {
	// SetThreshold sets the decision threshold (validated by the parser:
	// finite, > 0); an error refuses it.
	SetThreshold(float64) error
	// SetInspecting pauses (false) or resumes (true) inspection.
	SetInspecting(bool)
	// Threshold is the threshold in use; Inspecting whether inspection runs.
	Threshold() float64
	Inspecting() bool
}

// Config of an edge node with one device (the camera).
type Config struct {
	Conn     mqttx.Conn
	ClientID string // default "<edge node>-sparkplug"
	// GroupID, EdgeNodeID and DeviceID are the topic's ids: one level each,
	// without + # / (Validate checks).
	GroupID, EdgeNodeID, DeviceID string
	// PrimaryHostID, when set, delays the births until the primary host
	// application's STATE says it is online (spBv1.0/STATE/<id>, JSON
	// {"online":true,...}; the Sparkplug 2.2 form STATE/<id> with ONLINE is
	// accepted too), and sends NDEATH and reconnects when it goes offline.
	PrimaryHostID string
	Version       string // software version in the NBIRTH
	// BdSeqFile, when set, keeps the next bdSeq across restarts, so a host
	// never pairs a new NBIRTH with an old session's NDEATH.
	BdSeqFile string
	// Status is the daemon's status at start (state and model for the
	// first DBIRTH); StatusChanged brings later ones.
	Status  alerts.Status
	Logger  *slog.Logger
	Control Controller
}

// Validate says which id is unusable and why.
func (c Config) Validate() error {
	for _, f := range []struct{ name, v string }{{"group id", c.GroupID}, {"edge node id", c.EdgeNodeID}, {"device id", c.DeviceID}} {
		if err := CheckID(f.v); err != nil {
			return fmt.Errorf("sparkplug: %s %q: %w", f.name, f.v, err)
		}
	}
	if c.PrimaryHostID != "" {
		if err := CheckID(c.PrimaryHostID); err != nil {
			return fmt.Errorf("sparkplug: primary host id %q: %w", c.PrimaryHostID, err)
		}
	}
	if c.Control == nil {
		return errors.New("sparkplug: no controller")
	}
	return nil
}

// CheckID checks a Sparkplug id (group, edge node, device, host): one
// non-empty topic level of valid UTF-8 without the characters + # /.
func CheckID(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	case strings.ContainsAny(s, "+#/\x00"):
		return errors.New("contains + # / or NUL")
	case len(s) > 256:
		return errors.New("longer than 256 bytes")
	}
	return nil
}

// Topics of one edge node and its device.
type Topics struct {
	NBIRTH, NDEATH, NDATA, NCMD string
	DBIRTH, DDEATH, DDATA, DCMD string
	State, LegacyState          string // empty without a primary host
}

// TopicsFor returns spBv1.0/<group>/<TYPE>/<edge node>[/<device>].
func TopicsFor(group, node, device, host string) Topics {
	n := func(t string) string { return Namespace + "/" + group + "/" + t + "/" + node }
	d := func(t string) string { return n(t) + "/" + device }
	t := Topics{NBIRTH: n("NBIRTH"), NDEATH: n("NDEATH"), NDATA: n("NDATA"), NCMD: n("NCMD"),
		DBIRTH: d("DBIRTH"), DDEATH: d("DDEATH"), DDATA: d("DDATA"), DCMD: d("DCMD")}
	if host != "" {
		t.State, t.LegacyState = Namespace+"/STATE/"+host, "STATE/"+host
	}
	return t
}

// Stats counts what the node did (for tests and logs).
type Stats struct {
	Births, Data       uint64 // NBIRTH and DDATA messages sent
	Commands, Refused  uint64 // commands applied; refused metrics or payloads
	CommandsDropped    uint64 // commands dropped because the queue was full
	MessagesDropped    uint64 // outgoing messages dropped: the connection did not keep up
	BdSeq              uint64 // of the current connection
	Subscribed         bool   // the current connection listens for commands
	Born               bool
	PrimaryHostOnline  bool
	LastCommandRefusal string
}

// device holds the camera's current values.
type device struct {
	inspected         bool
	verdict, partID   string
	eventID           string
	defect, offShape  bool
	score, thr, ratio float64
	latency           float64
	seq               uint64
	at                time.Time
	loc               *alerts.Location
	inspections       uint64
	defects           uint64
	state             alerts.State
	modelID           string
	drift, rejectsHi  bool
	cfgThreshold      float64
	enabled           bool
}

// outMsg is one message for the sender goroutine; done, when set, gets
// the result once the broker acknowledged it (QoS 1).
type outMsg struct {
	c       mqtt.Client
	topic   string
	qos     byte
	payload []byte
	done    chan error
}

type cmdMsg struct {
	target Target
	cmds   []Command
}

// Node is the daemon as a Sparkplug B edge node, the camera its device. It
// implements the daemon's hook (Inspected, StatusChanged, Close).
type Node struct {
	cfg    Config
	log    *slog.Logger
	topics Topics
	sess   *mqttx.Session
	cmds   chan cmdMsg
	births chan struct{} // the primary host came online: birth if not born
	cancel context.CancelFunc
	done   chan struct{}
	out    chan outMsg   // to the sender; closed by Close
	sent   chan struct{} // closed when the sender has sent all

	mu        sync.Mutex
	outClosed bool
	client    mqtt.Client // the connection the births were sent on
	born      bool
	bdSeq     uint64 // of the current connection
	nextBdSeq uint64
	seq       uint64 // next message's seq
	dev       device
	hostUp    bool
	hostTS    int64
	subbed    bool

	nBirths, data, applied, refused, dropped, outDropped atomic.Uint64
	lastRefusal                                          atomic.Pointer[string]
}

// Start validates cfg and connects in the background; births follow each
// connection (after the primary host's STATE online, when configured).
func Start(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ClientID == "" {
		cfg.ClientID = cfg.EdgeNodeID + "-sparkplug"
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("dialect", "sparkplug"),
		topics: TopicsFor(cfg.GroupID, cfg.EdgeNodeID, cfg.DeviceID, cfg.PrimaryHostID),
		cmds:   make(chan cmdMsg, commandBuffer), births: make(chan struct{}, 1), done: make(chan struct{}),
		out: make(chan outMsg, outBuffer), sent: make(chan struct{})}
	n.dev.state, n.dev.modelID = cfg.Status.State, cfg.Status.ModelID
	if n.dev.state == "" {
		n.dev.state = alerts.StateStarting
	}
	n.dev.cfgThreshold = cfg.Control.Threshold()
	n.dev.enabled = cfg.Control.Inspecting()
	n.nextBdSeq = n.loadBdSeq()
	n.sess = &mqttx.Session{Conn: cfg.Conn, ClientID: cfg.ClientID, Log: n.log, Will: n.will, OnConnect: n.onConnect}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); n.sess.Run(ctx) }()
	go func() { defer wg.Done(); n.work(ctx) }()
	go func() { wg.Wait(); close(n.done) }()
	go n.sender()
	return n, nil
}

// Topics returns the node's topics.
func (n *Node) Topics() Topics { return n.topics }

// Stats returns counters and state.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	s := Stats{BdSeq: n.bdSeq, Born: n.born, PrimaryHostOnline: n.hostUp, Subscribed: n.subbed}
	n.mu.Unlock()
	s.Births, s.Data, s.Commands, s.Refused, s.CommandsDropped = n.nBirths.Load(), n.data.Load(), n.applied.Load(), n.refused.Load(), n.dropped.Load()
	s.MessagesDropped = n.outDropped.Load()
	if r := n.lastRefusal.Load(); r != nil {
		s.LastCommandRefusal = *r
	}
	return s
}

// will is the NDEATH of the next connection, carrying its bdSeq.
func (n *Node) will() *mqttx.Will {
	n.mu.Lock()
	defer n.mu.Unlock()
	return &mqttx.Will{Topic: n.topics.NDEATH, Payload: n.deathLocked(n.nextBdSeq), QoS: 1}
}

func (n *Node) deathLocked(bdSeq uint64) []byte {
	p := &pb.Payload{Timestamp: proto.Uint64(millis(time.Now())),
		Metrics: []*pb.Payload_Metric{MetricBdSeq.value(bdSeq, time.Time{}, true)}}
	b, _ := proto.Marshal(p) // a payload of scalars always marshals
	return b
}

// onConnect subscribes to the commands (and the primary host's state) and,
// without a primary host, births at once.
func (n *Node) onConnect(ctx context.Context, c mqtt.Client) error {
	n.mu.Lock()
	n.bdSeq = n.nextBdSeq
	n.nextBdSeq = (n.nextBdSeq + 1) % 256
	n.saveBdSeq(n.nextBdSeq)
	n.born, n.client, n.hostUp, n.subbed = false, c, false, false
	n.mu.Unlock()
	subs := map[string]byte{n.topics.NCMD: 1, n.topics.DCMD: 1}
	if n.topics.State != "" {
		subs[n.topics.State], subs[n.topics.LegacyState] = 1, 1
	}
	if err := mqttx.Wait(ctx, c.SubscribeMultiple(subs, n.onMessage), ackTimeout); err != nil {
		return fmt.Errorf("sparkplug: subscribing to commands: %w", err)
	}
	n.mu.Lock()
	n.subbed = n.client == c
	n.mu.Unlock()
	if n.topics.State == "" {
		n.birth(c)
	}
	return nil
}

// onMessage runs on paho's goroutine: parse (bounded) and hand over.
func (n *Node) onMessage(_ mqtt.Client, m mqtt.Message) {
	switch m.Topic() {
	case n.topics.State, n.topics.LegacyState:
		n.onState(m.Topic() == n.topics.LegacyState, m.Payload())
		return
	}
	target := DeviceCommand
	if m.Topic() == n.topics.NCMD {
		target = NodeCommand
	}
	if m.Retained() {
		n.refuse(fmt.Sprintf("retained command on %s ignored (commands must not be retained)", m.Topic()))
		return
	}
	cmds, err := ParseCommand(target, m.Payload())
	if err != nil {
		n.refuse(fmt.Sprintf("%s: %v", m.Topic(), err))
	}
	if len(cmds) == 0 {
		return
	}
	select {
	case n.cmds <- cmdMsg{target, cmds}:
	default:
		n.dropped.Add(1)
		n.log.Warn("sparkplug: command dropped: too many commands queued", "topic", m.Topic())
	}
}

func (n *Node) refuse(why string) {
	n.refused.Add(1)
	n.lastRefusal.Store(&why)
	n.log.Warn("sparkplug: command refused", "why", why)
}

// onState follows the primary host application's STATE.
func (n *Node) onState(legacy bool, payload []byte) {
	if len(payload) > maxStateBytes {
		n.log.Warn("sparkplug: STATE message too large, ignored", "bytes", len(payload))
		return
	}
	var online bool
	var ts int64
	if legacy {
		online = strings.TrimSpace(string(payload)) == "ONLINE"
	} else {
		var st struct {
			Online    *bool `json:"online"`
			Timestamp int64 `json:"timestamp"`
		}
		if err := json.Unmarshal(payload, &st); err != nil || st.Online == nil {
			n.log.Warn("sparkplug: STATE message is not {\"online\":bool,\"timestamp\":ms}, ignored", "bytes", len(payload))
			return
		}
		online, ts = *st.Online, st.Timestamp
	}
	n.mu.Lock()
	if !legacy && ts != 0 && ts < n.hostTS {
		n.mu.Unlock()
		return // an older STATE than the one we know
	}
	if ts != 0 {
		n.hostTS = ts
	}
	was, born := n.hostUp, n.born
	n.hostUp = online
	n.mu.Unlock()
	switch {
	case online && !was:
		n.log.Info("sparkplug: primary host online", "host", n.cfg.PrimaryHostID)
		select {
		case n.births <- struct{}{}:
		default:
		}
	case !online && was:
		n.log.Warn("sparkplug: primary host offline: NDEATH and reconnect", "host", n.cfg.PrimaryHostID)
		if born {
			select {
			case n.births <- struct{}{}: // work() sees hostUp false and dies
			default:
			}
		}
	}
}

// work applies commands and births after the primary host comes online.
func (n *Node) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.births:
			n.mu.Lock()
			c, born, up := n.client, n.born, n.hostUp
			n.mu.Unlock()
			switch {
			case c == nil || !c.IsConnectionOpen():
			case up && !born:
				n.birth(c)
			case !up && born:
				n.mu.Lock()
				n.born = false
				done := n.enqueueLocked(outMsg{c: c, topic: n.topics.NDEATH, qos: 1, payload: n.deathLocked(n.bdSeq)}, true)
				n.mu.Unlock()
				if err := waitDone(ctx, done); err != nil {
					n.log.Warn("sparkplug: publishing NDEATH", "err", err)
				}
				n.sess.Drop()
			}
		case m := <-n.cmds:
			for _, c := range m.cmds {
				n.apply(c)
			}
		}
	}
}

func (n *Node) apply(c Command) {
	n.applied.Add(1)
	n.log.Info("sparkplug: command", "command", c.Kind.String(), "threshold", c.Threshold, "enabled", c.Enabled)
	switch c.Kind {
	case CmdNodeRebirth:
		// Not while a configured primary host is offline: births wait for it.
		n.mu.Lock()
		cl, ok := n.client, n.topics.State == "" || n.hostUp
		n.mu.Unlock()
		if cl != nil && ok {
			n.birth(cl)
		}
	case CmdDeviceRebirth:
		n.mu.Lock()
		if n.born {
			n.sendLocked(n.topics.DBIRTH, n.dbirthLocked())
		}
		n.mu.Unlock()
	case CmdThreshold:
		if err := n.cfg.Control.SetThreshold(c.Threshold); err != nil {
			n.refuse(fmt.Sprintf("threshold %v: %v", c.Threshold, err))
			return
		}
		// Confirm with the value in use (unless a status update did already).
		n.mu.Lock()
		if thr := n.cfg.Control.Threshold(); thr != n.dev.cfgThreshold {
			n.dev.cfgThreshold = thr
			n.ddataLocked(MetricCfgThreshold.value(thr, time.Now(), false))
		}
		n.mu.Unlock()
	case CmdInspection:
		n.cfg.Control.SetInspecting(c.Enabled)
		n.mu.Lock()
		if on := n.cfg.Control.Inspecting(); on != n.dev.enabled {
			n.dev.enabled = on
			n.ddataLocked(MetricCfgInspection.value(on, time.Now(), false))
		}
		n.mu.Unlock()
	}
}

// birth sends NBIRTH (seq 0) and DBIRTH on c.
func (n *Node) birth(c mqtt.Client) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c != n.client {
		return
	}
	n.dev.cfgThreshold = n.cfg.Control.Threshold()
	n.dev.enabled = n.cfg.Control.Inspecting()
	now := time.Now()
	nb := &pb.Payload{Metrics: []*pb.Payload_Metric{
		MetricBdSeq.value(n.bdSeq, now, true),
		MetricRebirth.value(false, now, true),
		MetricSWVersion.value(n.cfg.Version, now, true),
		MetricDeviceList.value(n.cfg.DeviceID, now, true),
	}}
	n.seq = 0
	n.born = true
	n.sendLocked(n.topics.NBIRTH, nb)
	n.nBirths.Add(1)
	n.sendLocked(n.topics.DBIRTH, n.dbirthLocked())
	n.log.Info("sparkplug: born", "bdSeq", n.bdSeq, "node", n.cfg.EdgeNodeID, "device", n.cfg.DeviceID)
}

func (n *Node) dbirthLocked() *pb.Payload {
	d, now := n.dev, time.Now()
	at := d.at
	if at.IsZero() {
		at = now
	}
	opt := func(v any) any {
		if !d.inspected {
			return nil
		}
		return v
	}
	return &pb.Payload{Metrics: []*pb.Payload_Metric{
		MetricVerdict.value(opt(d.verdict), at, true),
		MetricDefect.value(opt(d.defect), at, true),
		MetricScore.value(opt(d.score), at, true),
		MetricThreshold.value(opt(d.thr), at, true),
		MetricScoreRatio.value(opt(d.ratio), at, true),
		MetricPartID.value(opt(d.partID), at, true),
		MetricSeq.value(opt(d.seq), at, true),
		MetricLatency.value(opt(d.latency), at, true),
		MetricEventID.value(opt(d.eventID), at, true),
		MetricDefectX.value(d.locX(), at, true),
		MetricDefectY.value(d.locY(), at, true),
		MetricDefectArea.value(d.locArea(), at, true),
		MetricOffShape.value(opt(d.offShape), at, true),
		MetricInspections.value(d.inspections, now, true),
		MetricDefects.value(d.defects, now, true),
		MetricState.value(string(d.state), now, true),
		MetricModelID.value(d.modelID, now, true),
		MetricDrift.value(d.drift, now, true),
		MetricRejectsHigh.value(d.rejectsHi, now, true),
		MetricCfgThreshold.value(d.cfgThreshold, now, true),
		MetricCfgInspection.value(d.enabled, now, true),
		MetricDeviceRebirth.value(false, now, true),
	}}
}

// sendLocked stamps seq (0..255, wrapping) and the time and queues the
// message for the sender, at QoS 0 as the specification asks for births and
// data. Without a connection the message is lost: the next connection
// births afresh.
func (n *Node) sendLocked(topic string, p *pb.Payload) {
	p.Seq = proto.Uint64(n.seq)
	n.seq = (n.seq + 1) % 256
	if p.Timestamp == nil {
		p.Timestamp = proto.Uint64(millis(time.Now()))
	}
	b, err := proto.Marshal(p)
	if err != nil {
		n.log.Error("sparkplug: encoding payload", "topic", topic, "err", err)
		return
	}
	if n.client == nil {
		return
	}
	n.enqueueLocked(outMsg{c: n.client, topic: topic, payload: b}, false)
}

// enqueueLocked hands m to the sender without blocking; a full queue drops
// it. With wait, the returned channel gets the broker's verdict.
func (n *Node) enqueueLocked(m outMsg, wait bool) chan error {
	if wait {
		m.done = make(chan error, 1)
	}
	if n.outClosed {
		if wait {
			m.done <- errors.New("sparkplug: node closed")
		}
		return m.done
	}
	select {
	case n.out <- m:
	default:
		if n.outDropped.Add(1)%100 == 1 {
			n.log.Warn("sparkplug: message dropped: the broker connection does not keep up", "topic", m.topic, "dropped", n.outDropped.Load())
		}
		if wait {
			m.done <- errors.New("sparkplug: send queue full")
		}
	}
	return m.done
}

// sender publishes the queued messages in order until the queue is closed.
func (n *Node) sender() {
	defer close(n.sent)
	for m := range n.out {
		tok := m.c.Publish(m.topic, m.qos, false, m.payload)
		if m.done != nil {
			m.done <- mqttx.Wait(context.Background(), tok, ackTimeout)
			continue
		}
		select {
		case <-tok.Done():
			if err := tok.Error(); err != nil {
				n.log.Debug("sparkplug: publish failed", "topic", m.topic, "err", err)
			}
		default:
		}
	}
}

func waitDone(ctx context.Context, done chan error) error {
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *Node) ddataLocked(ms ...*pb.Payload_Metric) {
	if !n.born || len(ms) == 0 {
		return
	}
	n.data.Add(1)
	n.sendLocked(n.topics.DDATA, &pb.Payload{Metrics: ms})
}

// Inspected publishes the inspection as DDATA (the heatmap is not part of
// the Sparkplug stream).
func (n *Node) Inspected(ev alerts.Event, _ []byte) {
	// The metrics' time is when the frame was taken (Sparkplug: the data's
	// acquisition time), else the event's.
	at := ev.CapturedAt
	if at.IsZero() {
		at = ev.Time
	}
	if at.IsZero() {
		at = time.Now()
	}
	ratio := 0.0
	if ev.Threshold > 0 {
		ratio = ev.Score / ev.Threshold
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	d := &n.dev
	d.inspected, d.at = true, at
	d.verdict, d.defect, d.partID, d.eventID = string(ev.Verdict), ev.Verdict == alerts.VerdictDefect, ev.PartID, ev.ID
	d.score, d.thr, d.ratio, d.latency, d.seq, d.loc = ev.Score, ev.Threshold, ratio, ev.LatencyMS, ev.Seq, ev.DefectLocation
	d.offShape = ev.OffShape != ""
	d.inspections++
	if d.defect {
		d.defects++
	}
	n.ddataLocked(
		MetricVerdict.value(d.verdict, at, false),
		MetricDefect.value(d.defect, at, false),
		MetricScore.value(d.score, at, false),
		MetricThreshold.value(d.thr, at, false),
		MetricScoreRatio.value(d.ratio, at, false),
		MetricPartID.value(d.partID, at, false),
		MetricSeq.value(d.seq, at, false),
		MetricLatency.value(d.latency, at, false),
		MetricEventID.value(d.eventID, at, false),
		MetricDefectX.value(d.locX(), at, false),
		MetricDefectY.value(d.locY(), at, false),
		MetricDefectArea.value(d.locArea(), at, false),
		MetricOffShape.value(d.offShape, at, false),
		MetricInspections.value(d.inspections, at, false),
		MetricDefects.value(d.defects, at, false),
	)
}

// StatusChanged publishes the state, model and configuration metrics that
// changed.
func (n *Node) StatusChanged(st alerts.Status) {
	now := time.Now()
	thr, on := n.cfg.Control.Threshold(), n.cfg.Control.Inspecting()
	n.mu.Lock()
	defer n.mu.Unlock()
	d := &n.dev
	var ms []*pb.Payload_Metric
	if st.State != d.state {
		d.state = st.State
		ms = append(ms, MetricState.value(string(d.state), now, false))
	}
	if st.ModelID != d.modelID {
		d.modelID = st.ModelID
		ms = append(ms, MetricModelID.value(d.modelID, now, false))
	}
	if st.Drift != d.drift {
		d.drift = st.Drift
		ms = append(ms, MetricDrift.value(d.drift, now, false))
	}
	if st.RejectsHigh != d.rejectsHi {
		d.rejectsHi = st.RejectsHigh
		ms = append(ms, MetricRejectsHigh.value(d.rejectsHi, now, false))
	}
	if thr != d.cfgThreshold {
		d.cfgThreshold = thr
		ms = append(ms, MetricCfgThreshold.value(thr, now, false))
	}
	if on != d.enabled {
		d.enabled = on
		ms = append(ms, MetricCfgInspection.value(on, now, false))
	}
	n.ddataLocked(ms...)
}

// Close sends DDEATH and NDEATH (the NDEATH the will would have sent, so a
// host sees the same either way) and disconnects, within ctx.
func (n *Node) Close(ctx context.Context) error {
	n.cancel()
	select {
	case <-n.done:
	case <-ctx.Done():
		return fmt.Errorf("sparkplug: closing: %w", ctx.Err())
	}
	n.mu.Lock()
	if n.outClosed {
		n.mu.Unlock()
		return nil
	}
	c, born := n.client, n.born
	var death chan error
	if born && c != nil && c.IsConnectionOpen() {
		n.sendLocked(n.topics.DDEATH, &pb.Payload{})
		death = n.enqueueLocked(outMsg{c: c, topic: n.topics.NDEATH, qos: 1, payload: n.deathLocked(n.bdSeq)}, true)
	}
	n.born, n.outClosed = false, true
	close(n.out)
	n.mu.Unlock()
	var err error
	if death != nil {
		if err = waitDone(ctx, death); err != nil {
			err = fmt.Errorf("sparkplug: publishing NDEATH: %w", err)
		}
	}
	select {
	case <-n.sent:
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("sparkplug: closing: %w", ctx.Err())
		}
	}
	if c != nil {
		c.Disconnect(250)
	}
	return err
}

// loadBdSeq reads the next bdSeq from BdSeqFile (0 when there is none or it
// is unreadable: a fresh start is always allowed).
func (n *Node) loadBdSeq() uint64 {
	if n.cfg.BdSeqFile == "" {
		return 0
	}
	b, err := os.ReadFile(n.cfg.BdSeqFile)
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil || len(b) > 8 {
		n.log.Warn("sparkplug: bdSeq file unreadable; starting at 0", "file", n.cfg.BdSeqFile, "err", err)
		return 0
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 8)
	if err != nil {
		n.log.Warn("sparkplug: bdSeq file holds no number 0..255; starting at 0", "file", n.cfg.BdSeqFile, "err", err)
		return 0
	}
	return v
}

// saveBdSeq writes the next bdSeq atomically; a failure is logged (the
// next start then begins at 0).
func (n *Node) saveBdSeq(v uint64) {
	if n.cfg.BdSeqFile == "" {
		return
	}
	tmp := n.cfg.BdSeqFile + ".tmp"
	err := os.WriteFile(tmp, []byte(strconv.FormatUint(v, 10)+"\n"), 0o640)
	if err == nil {
		err = os.Rename(tmp, n.cfg.BdSeqFile)
	}
	if err != nil {
		n.log.Warn("sparkplug: saving bdSeq", "file", n.cfg.BdSeqFile, "err", err)
	}
}

// The defect's location (null without one: a good part, or no heatmap).
func (d *device) locX() any {
	if d.loc == nil {
		return nil
	}
	return d.loc.PeakX
}

func (d *device) locY() any {
	if d.loc == nil {
		return nil
	}
	return d.loc.PeakY
}

func (d *device) locArea() any {
	if d.loc == nil {
		return nil
	}
	return d.loc.AreaPx
}
