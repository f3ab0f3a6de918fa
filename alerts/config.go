package alerts

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/inspectd/inspectd/internal/broker"
	"github.com/inspectd/inspectd/internal/redact"
)

// Mode says which inspections become events.
type Mode string

const (
	// PerInspection publishes an event for every inspected part.
	PerInspection Mode = "per-inspection"
	// PerDefect publishes only the parts whose verdict is "defect".
	PerDefect Mode = "per-defect"
)

// Defaults applied by Config.WithDefaults to zero-valued fields.
const (
	DefaultTopicPrefix          = "inspectd"
	DefaultQoS                  = 1
	DefaultSpoolMaxBytes        = 256 << 20
	DefaultSpoolMaxEntries      = 100_000
	DefaultConnectTimeout       = 10 * time.Second
	DefaultKeepAlive            = 30 * time.Second
	DefaultAckTimeout           = 30 * time.Second
	DefaultRetryInterval        = 1 * time.Second
	DefaultMaxReconnectInterval = 30 * time.Second
	DefaultStatusInterval       = 1 * time.Second
)

// Config is what the daemon fills from its environment. Zero values mean
// "use the default" (see WithDefaults).
type Config struct {
	// Brokers are tried in order: tcp://host:1883, ssl://host:8883 or
	// mqtts://host:8883 (mqtt:// and tls:// are accepted as aliases). A
	// missing port gets the scheme's standard one.
	Brokers []string
	// TopicPrefix is the installation's root, one or more topic levels
	// without wildcards (default "inspectd").
	TopicPrefix string
	// Camera names this camera's sub-tree: <prefix>/<camera>/...
	Camera string
	// ClientID must stay the same across restarts so the broker and the
	// subscribers recognise the camera (default "inspectd-<camera>"). Two
	// processes with the same id knock each other off the broker.
	ClientID string

	Username string
	Password string

	// CAFile verifies the broker (system roots when empty); CertFile and
	// KeyFile are the client certificate for brokers that require one.
	CAFile             string
	CertFile           string
	KeyFile            string
	InsecureSkipVerify bool

	// QoS for events, heatmaps, availability and status: 1 (default) or 2.
	// QoS 0 is refused: without a PUBACK the spool could not know that an
	// event arrived, which would break the no-event-lost promise.
	QoS int
	// Mode: PerInspection (default) or PerDefect.
	Mode Mode

	// SpoolDir holds events not yet acknowledged by the broker (required).
	SpoolDir string
	// SpoolMaxBytes and SpoolMaxEntries bound the spool; when either would
	// be exceeded the oldest entries are dropped (see package doc).
	SpoolMaxBytes   int64
	SpoolMaxEntries int

	ConnectTimeout time.Duration
	KeepAlive      time.Duration // whole seconds, at least 1 s (MQTT's unit)
	// AckTimeout is how long a publish may wait, while connected, for the
	// broker's acknowledgement before it is sent again.
	AckTimeout time.Duration
	// RetryInterval is the first wait between failed connection attempts,
	// doubling up to MaxReconnectInterval.
	RetryInterval        time.Duration
	MaxReconnectInterval time.Duration
	// StatusInterval is the shortest time between two status messages;
	// SetStatus calls in between are merged (the latest wins).
	StatusInterval time.Duration

	// Commands subscribes to <prefix>/<camera>/{threshold,inspection,model}/set
	// and delivers their messages on Publisher.Commands.
	Commands bool

	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns a copy with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.TopicPrefix == "" {
		c.TopicPrefix = DefaultTopicPrefix
	}
	if c.ClientID == "" && c.Camera != "" {
		c.ClientID = "inspectd-" + c.Camera
	}
	if c.QoS == 0 {
		c.QoS = DefaultQoS
	}
	if c.Mode == "" {
		c.Mode = PerInspection
	}
	if c.SpoolMaxBytes == 0 {
		c.SpoolMaxBytes = DefaultSpoolMaxBytes
	}
	if c.SpoolMaxEntries == 0 {
		c.SpoolMaxEntries = DefaultSpoolMaxEntries
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	if c.MaxReconnectInterval == 0 {
		c.MaxReconnectInterval = DefaultMaxReconnectInterval
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = DefaultStatusInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks the configuration as New would use it (defaults applied)
// and says which field is wrong and why.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("alerts config: "+format, args...))
	}

	if len(c.Brokers) == 0 {
		bad("Brokers: no broker URL given (for example tcp://127.0.0.1:1883)")
	}
	anyTLS, anyPlain := false, false
	for _, b := range c.Brokers {
		u, err := broker.Parse(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("alerts config: Brokers: %w", err))
			continue
		}
		if broker.IsTLS(u.Scheme) {
			anyTLS = true
		} else {
			anyPlain = true
		}
	}
	if anyTLS && anyPlain {
		// paho tries the brokers in turn: a TLS failure would be followed by
		// a plain connection carrying the password.
		bad("Brokers %s: mixes TLS (ssl://, mqtts://) and plain TCP; list brokers of one kind", redact.String(strings.Join(c.Brokers, ",")))
	}

	if err := checkTopicLevels(c.TopicPrefix); err != nil {
		bad("TopicPrefix %q: %v", c.TopicPrefix, err)
	}
	switch {
	case c.Camera == "":
		bad("Camera: empty; it names the topic sub-tree <prefix>/<camera>/")
	case strings.Contains(c.Camera, "/"):
		bad("Camera %q: must be a single topic level (no '/')", c.Camera)
	default:
		if err := checkTopicLevels(c.Camera); err != nil {
			bad("Camera %q: %v", c.Camera, err)
		}
	}
	if !utf8.ValidString(c.ClientID) || len(c.ClientID) > 65535 {
		bad("ClientID %q: must be valid UTF-8 of at most 65535 bytes", c.ClientID)
	}
	if c.Password != "" && c.Username == "" {
		bad("Password is set but Username is empty (MQTT 3.1.1 sends no password without a user name)")
	}

	for _, f := range []struct{ name, path string }{{"CAFile", c.CAFile}, {"CertFile", c.CertFile}, {"KeyFile", c.KeyFile}} {
		if f.path == "" {
			continue
		}
		if !anyTLS && len(c.Brokers) > 0 {
			bad("%s is set but no broker URL uses TLS (ssl:// or mqtts://)", f.name)
		}
		if _, err := os.Stat(f.path); err != nil {
			bad("%s: %v", f.name, err)
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		bad("CertFile and KeyFile must be given together (client certificate and its key)")
	}

	if c.QoS < 1 || c.QoS > 2 {
		bad("QoS %d: must be 1 or 2 (QoS 0 gets no acknowledgement, so the spool could not know an event arrived)", c.QoS)
	}
	if c.Mode != PerInspection && c.Mode != PerDefect {
		bad("Mode %q: must be %q or %q", c.Mode, PerInspection, PerDefect)
	}
	if c.SpoolDir == "" {
		bad("SpoolDir: empty; events are written there until the broker acknowledges them")
	}
	if c.SpoolMaxBytes < 0 {
		bad("SpoolMaxBytes %d: must be positive", c.SpoolMaxBytes)
	}
	if c.SpoolMaxEntries < 0 {
		bad("SpoolMaxEntries %d: must be positive", c.SpoolMaxEntries)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ConnectTimeout", c.ConnectTimeout}, {"AckTimeout", c.AckTimeout},
		{"RetryInterval", c.RetryInterval}, {"MaxReconnectInterval", c.MaxReconnectInterval},
		{"StatusInterval", c.StatusInterval},
	} {
		if d.v < 0 {
			bad("%s %v: must be positive", d.name, d.v)
		}
	}
	if c.KeepAlive < time.Second {
		bad("KeepAlive %v: must be at least 1s (MQTT counts it in whole seconds)", c.KeepAlive)
	}
	if c.MaxReconnectInterval < c.RetryInterval && c.MaxReconnectInterval > 0 {
		bad("MaxReconnectInterval %v is shorter than RetryInterval %v", c.MaxReconnectInterval, c.RetryInterval)
	}
	return errors.Join(errs...)
}

// checkTopicLevels rejects what would make a topic ambiguous or a filter:
// wildcards, NUL, empty levels and leading or trailing separators.
func checkTopicLevels(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	if strings.ContainsAny(s, "+#\x00") {
		return errors.New("contains a wildcard (+ or #) or NUL")
	}
	for _, level := range strings.Split(s, "/") {
		if level == "" {
			return errors.New("has an empty level (leading, trailing or doubled '/')")
		}
	}
	return nil
}

// tlsConfig loads the CA and client certificate; nil when no broker uses TLS.
func (c Config) tlsConfig() (*tls.Config, error) {
	anyTLS := false
	for _, b := range c.Brokers {
		if u, err := broker.Parse(b); err == nil && broker.IsTLS(u.Scheme) {
			anyTLS = true
		}
	}
	if !anyTLS {
		return nil, nil
	}
	tc, err := broker.TLS{CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile, InsecureSkipVerify: c.InsecureSkipVerify}.Config()
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	return tc, nil
}
