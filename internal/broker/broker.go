// Package broker reads MQTT broker URLs and loads the TLS material to reach
// them. Every connection inspectd makes (the event publisher, Sparkplug B,
// Home Assistant discovery) goes through it, so all of them accept the same
// URLs and certificates and none prints a password it was given.
package broker

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/inspectd/inspectd/internal/redact"
)

// Parse checks a broker URL (tcp://, mqtt://, ssl://, tls://, mqtts://) and
// fills in the scheme's standard port. Error messages carry the URL with its
// user info masked.
func Parse(raw string) (*url.URL, error) {
	shown := masked(raw)
	sep := strings.Index(raw, "://")
	if sep < 0 {
		return nil, fmt.Errorf("broker %q: no scheme; write tcp://host:1883, ssl://host:8883 or mqtts://host:8883", shown)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// The parser's message quotes the URL, and for malformed user info
		// (a space, a "/" in a password) parts of it as a host or port: say
		// what is wrong from the URL without its user info.
		if at := strings.LastIndex(raw, "@"); at >= 0 {
			if _, herr := url.Parse(raw[:sep+3] + raw[at+1:]); herr != nil {
				return nil, fmt.Errorf("broker %q: %w", shown, herr)
			}
			return nil, fmt.Errorf("broker %q: the user name or password is not valid in a URL (percent-encode reserved characters)", shown)
		}
		return nil, fmt.Errorf("broker %q: %w", shown, err)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts":
	default:
		return nil, fmt.Errorf("broker %q: scheme %q not supported (use tcp, ssl or mqtts)", shown, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("broker %q: no host", shown)
	}
	if u.Path != "" && u.Path != "/" {
		if strings.Contains(raw, "@") {
			// "tcp://us/er:secret@host" has the path "/er:secret@host".
			return nil, fmt.Errorf("broker %q: unexpected path after the host (percent-encode a \"/\" in the user name or password)", shown)
		}
		return nil, fmt.Errorf("broker %q: unexpected path %q", shown, u.Path)
	}
	if u.Port() == "" {
		port := "1883"
		if IsTLS(u.Scheme) {
			port = "8883"
		}
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	u.Path = ""
	return u, nil
}

// masked is raw with everything between "://" and its last "@" hidden:
// raw is one URL, so whatever lies there is user info, however malformed
// (redact.String stops at characters that end a URL in running text).
func masked(raw string) string {
	i, j := strings.Index(raw, "://"), strings.LastIndex(raw, "@")
	if i >= 0 && j > i+3 {
		return raw[:i+3] + redact.Mask + raw[j:]
	}
	return redact.String(raw)
}

// IsTLS says whether a broker URL's scheme asks for TLS.
func IsTLS(scheme string) bool { return scheme == "ssl" || scheme == "tls" || scheme == "mqtts" }

// TLS says where the certificates are: the CA that signs the broker's
// certificate (the system's roots when empty) and the client's own
// certificate and key (none when empty).
type TLS struct {
	CAFile, CertFile, KeyFile string
	// InsecureSkipVerify accepts any broker certificate.
	InsecureSkipVerify bool
}

// Config loads the files into a TLS 1.2+ client configuration.
func (t TLS) Config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading the CA file (CAFile): %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file (CAFile) %s: no PEM certificate found", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate %s / key %s: %w", t.CertFile, t.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
