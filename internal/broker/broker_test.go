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
// put a URL's password in its error.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"tcp://127.0.0.1", "mqtts://u:p@h:8883/", "ssl://[::1]", "tcp://u:pw@:1", "h:1883", "tcp://%zz", "tcp://u:p@h/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := Parse(raw)
		if err != nil {
			if pw := password(raw); len(pw) >= 4 && strings.Contains(err.Error(), pw) && !strings.Contains(raw[strings.Index(raw, "@")+1:], pw) {
				t.Fatalf("error %q shows the password %q", err, pw)
			}
			return
		}
		if u.Hostname() == "" || u.Port() == "" {
			t.Fatalf("%q parsed without host or port: %v", raw, u)
		}
	})
}

// password is what stands between "scheme://user:" and the last "@" of raw.
func password(raw string) string {
	i := strings.Index(raw, "://")
	j := strings.LastIndex(raw, "@")
	if i < 0 || j <= i+3 {
		return ""
	}
	userinfo := raw[i+3 : j]
	if k := strings.Index(userinfo, ":"); k >= 0 {
		return userinfo[k+1:]
	}
	return ""
}
