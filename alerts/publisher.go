package alerts

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/internal/broker"
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
		u, _ := broker.Parse(b) // checked by Validate
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

// Topics returns this camera's topics.
func (p *Publisher) Topics() Topics { return p.topics }

func (p *Publisher) poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
