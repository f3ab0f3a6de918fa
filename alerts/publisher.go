package alerts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/inspectd/inspectd/internal/redact"
)

var (
	// ErrClosed is returned by Publish after Close.
	ErrClosed = errors.New("alerts: publisher closed")
	// ErrRefused wraps a broker's CONNACK refusal (credentials, client id,
	// authorisation): retrying the same configuration cannot help.
	ErrRefused = errors.New("broker refused the connection")
	// ErrTLS wraps a TLS failure caused by certificates or keys.
	ErrTLS = errors.New("TLS handshake failed")
	// ErrNotDurable wraps a Publish whose event could not be written to the
	// spool (disk full, I/O error): it is kept in memory (bounded), written
	// again every SpoolRetryInterval and sent once written; Stats and the
	// status say so. A crash before then loses it.
	ErrNotDurable = errors.New("event kept in memory: the spool cannot be written")
)

const (
	availabilityOnline  = "online"
	availabilityOffline = "offline"
	// triggerBuffer holds triggers the daemon has not taken yet (a burst
	// from the PLC); beyond it triggers are dropped, counted and logged.
	triggerBuffer  = 1024
	maxPartIDBytes = 256
	// maxTriggerPayload: larger trigger payloads are refused before they
	// are copied. paho has already read the packet by then: the broker's
	// limit (mosquitto: max_packet_size, or message_size_limit) is what
	// keeps large packets from reaching the daemon at all.
	maxTriggerPayload = 4 * maxPartIDBytes
	// dropLogEvery spaces the warnings about dropped triggers.
	dropLogEvery = 10 * time.Second
	// pollInterval is how often a wait for a PUBACK checks the connection,
	// and the pause before re-sending after a failure.
	pollInterval = 100 * time.Millisecond
)

// Topics is the topic tree of one camera.
type Topics struct {
	Availability string // "online"/"offline", retained, Last Will
	Event        string // event JSON
	HeatmapBase  string // heatmap JPEGs are published on HeatmapBase + "/" + event id
	Status       string // retained status JSON
	Trigger      string // subscribed; payload is a part id
	Feedback     string // subscribed; operator verdicts (JSON, see Feedback)

	base string // <prefix>/<camera>/, under which CommandTopic and StateTopic are
}

// TopicsFor returns the topics under <prefix>/<camera>/.
func TopicsFor(prefix, camera string) Topics {
	base := prefix + "/" + camera + "/"
	return Topics{
		Availability: base + "availability",
		Event:        base + "event",
		HeatmapBase:  base + "heatmap",
		Status:       base + "status",
		Trigger:      base + "trigger",
		Feedback:     base + "feedback",
		base:         base,
	}
}

// HeatmapTopic is where the heatmap of event id is published.
func (t Topics) HeatmapTopic(id string) string { return t.HeatmapBase + "/" + id }

// Publisher sends inspection events to the broker through a disk spool.
// All methods are safe for concurrent use.
type Publisher struct {
	cfg    Config
	log    *slog.Logger
	topics Topics
	opts   *mqtt.ClientOptions
	cur    atomic.Pointer[clientRef] // the client of the newest successful connection
	spool  *spool
	qos    byte

	mu     sync.RWMutex // held for reading while spooling, for writing by Close
	closed bool

	wake      chan struct{} // an entry was spooled
	reconnect chan struct{} // the connection is down: connectLoop should connect
	draining  chan struct{} // Close asked the sender to empty the spool and stop
	runCtx    context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	sendDone  chan struct{}

	connMu sync.Mutex
	connCh chan struct{} // closed (and replaced) at every successful connection

	trigMu     sync.Mutex
	trigClosed bool
	triggers   chan Trigger
	feedback   chan Feedback
	commands   chan Command

	stateMu      sync.Mutex
	statePending map[CommandName]string // states not yet acknowledged by the broker
	stateSent    map[CommandName]string // the last value of each state the broker took

	statusMu   sync.Mutex
	pending    *Status // newest status not yet sent
	lastStatus *Status // re-sent after a reconnect: the broker may have lost it
	statusWake chan struct{}

	dropLogMu  sync.Mutex
	dropLogAt  time.Time // last warning about dropped triggers
	dropLogged uint64    // trigDropped at that warning

	published, skipped, trigDropped, fbDropped, cmdDropped atomic.Uint64
	lastErr                                                atomic.Pointer[string]
}

// New opens the spool and connects. A broker that refuses the credentials or
// fails TLS verification is an error (ErrRefused, ErrTLS): the configuration
// is wrong. An unreachable broker is not: New returns, events are spooled,
// and connecting goes on in the background.
func New(ctx context.Context, cfg Config) (*Publisher, error) {
	// A caller's logger is already labelled (the daemon's carries the
	// camera); only the default one gets the camera added here.
	ownLogger := cfg.Logger == nil
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ownLogger {
		cfg.Logger = cfg.Logger.With("camera", cfg.Camera)
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	sp, err := openSpool(cfg.SpoolDir, cfg.SpoolMaxBytes, cfg.SpoolMaxEntries, cfg.Logger)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p := &Publisher{
		cfg:          cfg,
		log:          cfg.Logger,
		topics:       TopicsFor(cfg.TopicPrefix, cfg.Camera),
		spool:        sp,
		qos:          byte(cfg.QoS),
		wake:         make(chan struct{}, 1),
		reconnect:    make(chan struct{}, 1),
		draining:     make(chan struct{}),
		runCtx:       runCtx,
		cancel:       cancel,
		sendDone:     make(chan struct{}),
		connCh:       make(chan struct{}),
		triggers:     make(chan Trigger, triggerBuffer),
		feedback:     make(chan Feedback, feedbackBuffer),
		commands:     make(chan Command, commandBuffer),
		statePending: map[CommandName]string{},
		stateSent:    map[CommandName]string{},
		statusWake:   make(chan struct{}, 1),
	}

	p.opts = mqtt.NewClientOptions()
	for _, b := range cfg.Brokers {
		u, _ := parseBroker(b) // checked by Validate
		p.opts.AddBroker(u.String())
	}
	p.opts.SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		// 3.1.1 explicitly: otherwise paho retries a refused connection as
		// 3.1 and reports that attempt's error instead of the real one.
		SetProtocolVersion(4).
		// A clean session: triggers sent while the camera was away are stale
		// and must not be replayed; unsent events live in our spool.
		SetCleanSession(true).
		// Reconnecting is connectLoop's job, with a fresh paho client for
		// every connection. paho's own reconnect re-sends in-flight messages
		// under new tokens and completes the old tokens without an error
		// although no PUBACK came, and a Publish blocked on a dying
		// connection is written on the next one: either would let the spool
		// delete unacknowledged entries or reorder them. A client used for
		// one connection only fails all its in-flight tokens when it drops.
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetKeepAlive(cfg.KeepAlive).
		SetPingTimeout(min(cfg.KeepAlive, 10*time.Second)).
		SetWriteTimeout(cfg.AckTimeout).
		// Triggers in the order the PLC sent them: paho then calls
		// onTrigger from its router goroutine, so it must not block
		// (it does not: a full queue drops).
		SetOrderMatters(true).
		SetBinaryWill(p.topics.Availability, []byte(availabilityOffline), p.qos, true).
		SetOnConnectHandler(p.onConnect).
		SetConnectionLostHandler(p.onConnectionLost)
	if tlsCfg != nil {
		p.opts.SetTLSConfig(tlsCfg)
	}
	// A never-connected client until the first connection, so that
	// Connected and the sender need no nil checks.
	p.cur.Store(&clientRef{mqtt.NewClient(p.opts)})

	switch err := p.connectOnce(ctx); {
	case err == nil:
	case isPermanent(err) || ctx.Err() != nil:
		cancel()
		sp.close()
		return nil, err
	default:
		p.log.Warn("alerts: broker unreachable; events are spooled until it is", "err", err)
		p.poke(p.reconnect)
	}

	p.wg.Add(4)
	go func() { defer p.wg.Done(); p.retryLoop() }()
	go func() { defer p.wg.Done(); p.sendLoop() }()
	go func() { defer p.wg.Done(); p.statusLoop() }()
	go func() { defer p.wg.Done(); p.connectLoop() }()
	return p, nil
}

type clientRef struct{ mqtt.Client }

// client returns the client of the current (or last) connection.
func (p *Publisher) client() mqtt.Client { return p.cur.Load().Client }

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

func (p *Publisher) onTrigger(_ mqtt.Client, m mqtt.Message) {
	if m.Retained() {
		// A retained command would re-fire at every reconnect.
		p.log.Warn("alerts: ignoring retained trigger; publish triggers without the retain flag", "topic", m.Topic())
		return
	}
	now := time.Now()
	// Checked before the payload is copied: a 200 MB payload must not
	// become a 200 MB string as well.
	payload := m.Payload()
	if len(payload) > maxTriggerPayload {
		p.dropTrigger(now, fmt.Sprintf("payload of %d bytes, at most %d", len(payload), maxTriggerPayload))
		return
	}
	idb := bytes.TrimSpace(payload)
	if !utf8.Valid(idb) || len(idb) > maxPartIDBytes {
		p.dropTrigger(now, fmt.Sprintf("part id must be UTF-8 of at most %d bytes, got %d bytes", maxPartIDBytes, len(idb)))
		return
	}
	id := string(idb)
	p.trigMu.Lock()
	defer p.trigMu.Unlock()
	if p.trigClosed {
		return
	}
	select {
	case p.triggers <- Trigger{PartID: id, Time: now}:
	default:
		p.dropTrigger(now, "the daemon is not taking triggers fast enough (queue full)")
	}
}

// dropTrigger counts a refused or dropped trigger and logs at most one
// warning per dropLogEvery, with the count since the last one: a flood of
// triggers must not become a flood of log lines.
func (p *Publisher) dropTrigger(now time.Time, why string) {
	n := p.trigDropped.Add(1)
	p.dropLogMu.Lock()
	defer p.dropLogMu.Unlock()
	if !p.dropLogAt.IsZero() && now.Sub(p.dropLogAt) < dropLogEvery {
		return
	}
	p.log.Warn("alerts: trigger dropped", "reason", why, "dropped_since_last_report", n-p.dropLogged, "dropped_total", n)
	p.dropLogAt, p.dropLogged = now, n
}

// Trigger delivers the part ids received on the trigger topic. It is closed
// by Close.
func (p *Publisher) Trigger() <-chan Trigger { return p.triggers }

// Topics returns this camera's topics.
func (p *Publisher) Topics() Topics { return p.topics }

// Publish completes ev (schema, id, time, camera, heatmap fields), writes it
// and the heatmap durably to the spool and returns; sending happens in the
// background. In PerDefect mode a non-defect event is counted and skipped.
// heatmapJPEG may be nil.
func (p *Publisher) Publish(ctx context.Context, ev Event, heatmapJPEG []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	switch ev.Verdict {
	case VerdictOK, VerdictDefect:
		ev.Reason = ""
	case VerdictError:
		if ev.Reason == "" {
			return errors.New("alerts: publishing event: an error verdict needs a reason")
		}
	default:
		return fmt.Errorf("alerts: publishing event: verdict %q, want %q, %q or %q", ev.Verdict, VerdictOK, VerdictDefect, VerdictError)
	}
	// Errors need attention as defects do: PerDefect sends both.
	if p.cfg.Mode == PerDefect && ev.Verdict == VerdictOK {
		p.skipped.Add(1)
		return nil
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"score", ev.Score}, {"threshold", ev.Threshold}, {"latency_ms", ev.LatencyMS}, {"score_ratio", ev.ScoreRatio}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("alerts: publishing event: %s is %v; JSON cannot carry it", f.name, f.v)
		}
	}
	if ev.Camera != "" && ev.Camera != p.cfg.Camera {
		return fmt.Errorf("alerts: publishing event: camera %q, but this publisher is for %q", ev.Camera, p.cfg.Camera)
	}
	if ev.ID == "" {
		ev.ID = NewID()
	} else if err := checkTopicLevels(ev.ID); err != nil || strings.Contains(ev.ID, "/") {
		return fmt.Errorf("alerts: publishing event: id %q must be usable as one topic level", ev.ID)
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Time = ev.Time.UTC()
	ev.Schema = EventSchema
	ev.Camera = p.cfg.Camera
	ev.HeatmapTopic, ev.HeatmapBytes, ev.HeatmapSHA256 = "", 0, ""
	if len(heatmapJPEG) > 0 {
		if len(heatmapJPEG) < 3 || heatmapJPEG[0] != 0xFF || heatmapJPEG[1] != 0xD8 || heatmapJPEG[2] != 0xFF {
			return fmt.Errorf("alerts: publishing event %s: heatmap is not a JPEG (no SOI marker)", ev.ID)
		}
		sum := sha256.Sum256(heatmapJPEG)
		ev.HeatmapTopic = p.topics.HeatmapTopic(ev.ID)
		ev.HeatmapBytes = len(heatmapJPEG)
		ev.HeatmapSHA256 = hex.EncodeToString(sum[:])
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("alerts: encoding event %s: %w", ev.ID, err)
	}

	if _, err := p.spool.append(data, heatmapJPEG); err != nil {
		if errors.Is(err, ErrNotDurable) {
			p.log.Warn("alerts: spool write failed; event kept in memory and retried", "event", ev.ID, "err", err)
		}
		return err
	}
	p.poke(p.wake)
	return nil
}

// SpoolRetryInterval is how often entries that could not be written to the
// spool are written again.
const SpoolRetryInterval = time.Second

// retryLoop writes held entries to the spool once it accepts writes again
// (space freed), not only at the next start.
func (p *Publisher) retryLoop() {
	t := time.NewTicker(SpoolRetryInterval)
	defer t.Stop()
	for {
		select {
		case <-p.runCtx.Done():
			return
		case <-t.C:
		}
		if held, _, _ := p.spool.health(); held == 0 {
			continue
		}
		n, err := p.spool.flush()
		if n > 0 {
			p.poke(p.wake)
		}
		if err == nil {
			p.log.Info("alerts: spool writable again; events held in memory written", "events", n)
		}
	}
}

func (p *Publisher) poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// sendLoop publishes spool entries in order (each as its heatmap, then its
// event) and deletes an entry only after the broker acknowledged both.
// Up to sendWindow entries are in flight at once: waiting for each PUBACK
// in turn would cap the rate at one entry per two round trips (and, with
// mosquitto's default Nagle setting, one per delayed-ACK timer, ~30/s).
// On any failure everything in flight is sent again from the oldest entry,
// so an entry may arrive more than once, but a later entry never arrives
// before the first copy of an earlier one: one TCP connection keeps order.
func (p *Publisher) sendLoop() {
	defer close(p.sendDone)
	ctx := p.runCtx
	var (
		window []inflight
		c      mqtt.Client // every entry of window was handed to this client
	)
	for {
		if len(window) == 0 {
			e, ok := p.spool.oldest()
			if !ok {
				select {
				case <-p.draining:
					return
				default:
				}
				select {
				case <-p.wake:
				case <-p.draining:
				case <-ctx.Done():
					return
				}
				continue
			}
			if !p.waitConnected(ctx) {
				return
			}
			c = p.client()
			window = append(window, p.start(c, e))
		}
		for len(window) < sendWindow && c.IsConnectionOpen() {
			e, ok := p.spool.after(window[len(window)-1].e.seq)
			if !ok {
				break
			}
			window = append(window, p.start(c, e))
		}

		head := window[0]
		var err error
		for _, tok := range head.toks {
			if err = p.waitAck(ctx, c, tok); err != nil {
				break
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !errors.Is(err, errReconnected) {
				p.setErr(fmt.Errorf("alerts: publishing event %s: %w", head.e.id, err))
			}
			p.log.Debug("alerts: send failed; resending from the oldest entry", "event", head.e.id, "in_flight", len(window), "err", err)
			window = nil
			select {
			case <-ctx.Done():
				return
			case <-time.After(pollInterval):
			}
			continue
		}
		p.published.Add(1) // before the removal, so depth 0 implies the count is final
		if err := p.spool.remove(head.e.seq); err != nil {
			p.log.Error("alerts: spool", "err", err)
		}
		window = window[1:]
	}
}

// sendWindow is the number of spool entries in flight at once.
const sendWindow = 16

type inflight struct {
	e    spoolEntry
	toks []mqtt.Token
}

// start hands one entry to paho: heatmap first, so a subscriber holding the
// event can already have the image it names.
func (p *Publisher) start(c mqtt.Client, e spoolEntry) inflight {
	f := inflight{e: e}
	if len(e.heatmap) > 0 {
		f.toks = append(f.toks, c.Publish(e.hmTopic, p.qos, false, e.heatmap))
	}
	f.toks = append(f.toks, c.Publish(p.topics.Event, p.qos, false, e.event))
	return f
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

var (
	errReconnected = errors.New("connection re-established while waiting for the acknowledgement")
	errAckTimeout  = errors.New("no acknowledgement from the broker in AckTimeout")
)

// waitAck waits for the PUBACK of a message handed to client c. A lost
// connection fails the token; as second guards, a newer connection or
// AckTimeout of connected time also mean "send again" (a duplicate at worst).
func (p *Publisher) waitAck(ctx context.Context, c mqtt.Client, tok mqtt.Token) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var waited time.Duration
	for {
		select {
		case <-tok.Done():
			return tok.Error()
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if p.client() != c {
				return errReconnected
			}
			if c.IsConnectionOpen() {
				waited += pollInterval
				if waited >= p.cfg.AckTimeout {
					return errAckTimeout
				}
			}
		}
	}
}

// SetStatus publishes s, retained, on the status topic. Calls closer together
// than StatusInterval are merged (the newest wins); the call never blocks.
// Schema, Camera, SpoolDepth, the event counters and Time are filled in when
// the message is sent.
func (p *Publisher) SetStatus(s Status) {
	p.statusMu.Lock()
	p.pending = &s
	p.statusMu.Unlock()
	p.poke(p.statusWake)
}

func (p *Publisher) statusLoop() {
	ctx := p.runCtx
	var last time.Time
	for {
		select {
		case <-p.statusWake:
		case <-ctx.Done():
			return
		}
		if wait := time.Until(last.Add(p.cfg.StatusInterval)); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			}
		}
		if !p.client().IsConnectionOpen() {
			continue // onConnect pokes again
		}
		p.sendStates(ctx)
		p.statusMu.Lock()
		s := p.pending
		p.pending = nil
		p.statusMu.Unlock()
		if s == nil {
			continue
		}
		last = time.Now()
		if err := p.sendStatus(ctx, *s); err != nil {
			p.log.Warn("alerts: publishing status", "err", err)
			p.statusMu.Lock()
			if p.pending == nil {
				p.pending = s
			}
			p.statusMu.Unlock()
			continue
		}
		p.statusMu.Lock()
		p.lastStatus = s
		p.statusMu.Unlock()
	}
}

func (p *Publisher) sendStatus(ctx context.Context, s Status) error {
	depth, _, dropped, corrupt := p.spool.stats()
	s.Schema = StatusSchema
	s.Camera = p.cfg.Camera
	s.SpoolDepth = depth
	s.EventsPublished = p.published.Load()
	s.EventsDropped = dropped
	s.SpoolCorrupt = corrupt
	s.SpoolHeld, s.SpoolWriteErrors, s.SpoolError = p.spool.health()
	s.Time = time.Now().UTC()
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encoding status: %w", err)
	}
	c := p.client()
	return p.waitAck(ctx, c, c.Publish(p.topics.Status, p.qos, true, data))
}

// Close stops accepting events, keeps sending the spool until it is empty or
// ctx is nearly done, publishes "offline" (retained), and disconnects.
// Entries still spooled are sent by the next Publisher on the same SpoolDir;
// Close then returns an error saying how many. With the broker down and a ctx
// without deadline, Close waits for the broker.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	// A last chance for events held in memory to reach the disk.
	if held, _, _ := p.spool.health(); held > 0 {
		if _, err := p.spool.flush(); err == nil {
			p.poke(p.wake)
		}
	}
	close(p.draining)

	// Leave a little of ctx for the offline message and the disconnect.
	flushCtx, cancelFlush := ctx, context.CancelFunc(func() {})
	if dl, ok := ctx.Deadline(); ok {
		reserve := min(time.Second, time.Until(dl)/4)
		flushCtx, cancelFlush = context.WithDeadline(ctx, dl.Add(-reserve))
	}
	select {
	case <-p.sendDone:
	case <-flushCtx.Done():
	}
	cancelFlush()
	p.cancel()
	p.wg.Wait()

	var errs []error
	c := p.client()
	if c.IsConnectionOpen() {
		tok := c.Publish(p.topics.Availability, p.qos, true, availabilityOffline)
		select {
		case <-tok.Done():
			if err := tok.Error(); err != nil {
				errs = append(errs, fmt.Errorf("alerts: publishing offline: %w", err))
			}
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("alerts: publishing offline: %w", ctx.Err()))
		}
	}
	c.Disconnect(250)

	p.trigMu.Lock()
	p.trigClosed = true
	close(p.triggers)
	close(p.feedback)
	close(p.commands)
	p.trigMu.Unlock()

	if held, _, lastErr := p.spool.health(); held > 0 {
		errs = append(errs, fmt.Errorf("alerts: closed with %d events that could not be written to the spool (lost): %s", held, lastErr))
	}
	if depth, _, _, _ := p.spool.stats(); depth > 0 {
		errs = append(errs, fmt.Errorf("alerts: closed with %d events still in spool %s (sent at next start)", depth, p.cfg.SpoolDir))
	}
	p.spool.close()
	return errors.Join(errs...)
}

func (p *Publisher) setErr(err error) {
	s := err.Error()
	p.lastErr.Store(&s)
}

// Stats is a snapshot of the publisher's counters.
type Stats struct {
	Connected        bool
	SpoolDepth       int
	SpoolBytes       int64
	Published        uint64 // events acknowledged by the broker
	Dropped          uint64 // events dropped, oldest first, because the spool was full
	Corrupt          uint64 // spool entries moved aside as unreadable
	Skipped          uint64 // non-defect events not sent in PerDefect mode
	TriggersDropped  uint64 // triggers refused (payload) or dropped (queue full)
	FeedbackDropped  uint64 // feedback messages not delivered because the channel was full
	CommandsDropped  uint64 // command messages not delivered because the channel was full
	SpoolHeld        int    // events kept in memory because the spool could not be written
	SpoolWriteErrors uint64 // failed spool writes (each retried)
	SpoolError       string // the last spool write error; empty once writes succeed
	LastError        string // last connection or send error; empty once connected again
}

// Stats returns the counters for metrics.
func (p *Publisher) Stats() Stats {
	depth, size, dropped, corrupt := p.spool.stats()
	held, writeErrs, spoolErr := p.spool.health()
	return Stats{
		Connected:        p.client().IsConnectionOpen(),
		SpoolDepth:       depth,
		SpoolBytes:       size,
		Published:        p.published.Load(),
		Dropped:          dropped,
		Corrupt:          corrupt,
		Skipped:          p.skipped.Load(),
		TriggersDropped:  p.trigDropped.Load(),
		FeedbackDropped:  p.fbDropped.Load(),
		CommandsDropped:  p.cmdDropped.Load(),
		SpoolHeld:        held,
		SpoolWriteErrors: writeErrs,
		SpoolError:       spoolErr,
		LastError:        p.LastError(),
	}
}

// SpoolDepth is the number of events waiting for the broker.
func (p *Publisher) SpoolDepth() int { d, _, _, _ := p.spool.stats(); return d }

// Published counts events acknowledged by the broker.
func (p *Publisher) Published() uint64 { return p.published.Load() }

// Dropped counts events dropped because the spool was full.
func (p *Publisher) Dropped() uint64 { _, _, d, _ := p.spool.stats(); return d }

// Connected reports whether the connection to the broker is up now.
func (p *Publisher) Connected() bool { return p.client().IsConnectionOpen() }

// LastError is the last connection or send error, empty once reconnected.
func (p *Publisher) LastError() string {
	if s := p.lastErr.Load(); s != nil {
		return *s
	}
	return ""
}
