package broker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want string // the URL as parsed, or part of the error
		err  bool
	}{
		{"tcp://127.0.0.1", "tcp://127.0.0.1:1883", false},
		{"mqtt://broker.local", "mqtt://broker.local:1883", false},
		{"mqtts://broker.local", "mqtts://broker.local:8883", false},
		{"ssl://broker.local:9999", "ssl://broker.local:9999", false},
		{"tls://[::1]", "tls://[::1]:8883", false},
		{"tcp://user:s3cret@h/", "tcp://user:s3cret@h:1883", false},
		{"127.0.0.1:1883", "no scheme", true},
		{"http://h:1", `scheme "http" not supported`, true},
		{"tcp://:1883", "no host", true},
		{"tcp://h/topic", "unexpected path", true},
		{"tcp://user:s3cret@:1883", "tcp://***@:1883", true},
		{"tcp://user:s3cret@h:bad", "tcp://***@h:bad", true},
		{"tcp://user:s3 cret@h", "tcp://***@h", true},
		{"tcp://user:s3/cret@h", "password is not valid", true},
		{"tcp://us/er:s3cret@h", "unexpected path after the host", true},
		{"tcp://user:s3cret@h:x", `invalid port ":x"`, true},
		{"tcp://user:s3cret@h%zz", "tcp://***@h%zz", true},
	} {
		u, err := Parse(c.raw)
		if c.err {
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%q: error %v, want one saying %q", c.raw, err, c.want)
			}
			if err != nil && (strings.Contains(err.Error(), "s3") || strings.Contains(err.Error(), "cret")) {
				t.Errorf("%q: error %q shows the password", c.raw, err)
			}
			continue
		}
		if err != nil || u.String() != c.want {
			t.Errorf("%q: %v, %v; want %s", c.raw, u, err, c.want)
		}
	}
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		tls  TLS
		want string // part of the error; "" for none
	}{
		{"system roots", TLS{}, ""},
		{"missing CA file", TLS{CAFile: filepath.Join(dir, "nope.pem")}, "CA file"},
		{"CA file without a certificate", TLS{CAFile: notPEM}, "no PEM certificate"},
		{"client certificate missing", TLS{CertFile: filepath.Join(dir, "c.pem"), KeyFile: filepath.Join(dir, "k.pem")}, "client certificate"},
	} {
		tc, err := c.tls.Config()
		switch {
		case c.want == "" && (err != nil || tc == nil || tc.RootCAs != nil || tc.MinVersion == 0):
			t.Errorf("%s: %+v, %v; want TLS 1.2+ on the system roots", c.name, tc, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
}

// FuzzParse: broker URLs come from settings and command lines. Parse must
// not panic, must give every accepted URL a host and a port, and must never
// put the password in an error. The password starts with a canary that no
// message holds, so a leak of it cannot be mistaken for the same text met
// elsewhere (a scheme or a host that happens to equal the password).
func FuzzParse(f *testing.F) {
	for _, s := range [][4]string{
		{"tcp", "u", "p", "127.0.0.1"}, {"mqtts", "u", "p w", "h:8883/"}, {"ssl", "", "p/w", "[::1]"},
		{"tcp", "u", "pw", ":1"}, {"", "u", "p", "h:1883"}, {"tcp", "u", "%zz", "h"}, {"0000", "", "0000", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	const canary = "Zq9~"
	f.Fuzz(func(t *testing.T, scheme, user, pw, host string) {
		raw := scheme + "://" + user + ":" + canary + pw + "@" + host
		u, err := Parse(raw)
		if err != nil {
			if strings.Count(raw, canary) == 1 && strings.Contains(err.Error(), canary) {
				t.Fatalf("error %q shows the password of %q", err, raw)
			}
			return
		}
		if u.Hostname() == "" || u.Port() == "" {
			t.Fatalf("%q parsed without host or port: %v", raw, u)
		}
	})
}
