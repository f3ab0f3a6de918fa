package alerts

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(existing, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := Config{Brokers: []string{"tcp://127.0.0.1:1883"}, Camera: "cam0", SpoolDir: dir}
	cases := []struct {
		name   string
		modify func(*Config)
		want   string // substring of the error; empty: valid
	}{
		{"minimal", func(*Config) {}, ""},
		{"tls schemes and default port", func(c *Config) {
			c.Brokers = []string{"ssl://broker", "mqtts://b2:8884"}
			c.CAFile = existing
		}, ""},
		{"per-defect QoS 2", func(c *Config) { c.Mode, c.QoS = PerDefect, 2 }, ""},
		{"no broker", func(c *Config) { c.Brokers = nil }, "Brokers: no broker URL"},
		{"no scheme", func(c *Config) { c.Brokers = []string{"127.0.0.1:1883"} }, "scheme"},
		{"websocket", func(c *Config) { c.Brokers = []string{"ws://h:80"} }, `scheme "ws" not supported`},
		{"no host", func(c *Config) { c.Brokers = []string{"tcp://:1883"} }, "no host"},
		{"no camera", func(c *Config) { c.Camera = "" }, "Camera: empty"},
		{"camera with slash", func(c *Config) { c.Camera = "line1/cam0" }, "single topic level"},
		{"camera wildcard", func(c *Config) { c.Camera = "cam+" }, "wildcard"},
		{"prefix wildcard", func(c *Config) { c.TopicPrefix = "plant/#" }, "TopicPrefix"},
		{"prefix trailing slash", func(c *Config) { c.TopicPrefix = "plant/" }, "empty level"},
		{"QoS 0", func(c *Config) { c.QoS = -1 }, "QoS -1"},
		{"QoS 3", func(c *Config) { c.QoS = 3 }, "must be 1 or 2"},
		{"bad mode", func(c *Config) { c.Mode = "always" }, `Mode "always"`},
		{"no spool", func(c *Config) { c.SpoolDir = "" }, "SpoolDir: empty"},
		{"negative spool bytes", func(c *Config) { c.SpoolMaxBytes = -1 }, "SpoolMaxBytes"},
		{"password without user", func(c *Config) { c.Password = "x" }, "Username is empty"},
		{"CA with plain tcp", func(c *Config) { c.CAFile = existing }, "no broker URL uses TLS"},
		{"TLS and plain TCP mixed", func(c *Config) {
			c.Brokers = []string{"ssl://user:s3cret@a", "tcp://user:s3cret@b"}
			c.Username, c.Password = "user", "s3cret"
		}, "mixes TLS (ssl://, mqtts://) and plain TCP"},
		{"bad broker URL keeps its password", func(c *Config) { c.Brokers = []string{"tcp://user:s3cret@:1883"} }, "tcp://***@:1883"},
		{"missing CA file", func(c *Config) {
			c.Brokers = []string{"ssl://h"}
			c.CAFile = filepath.Join(dir, "nope.pem")
		}, "CAFile"},
		{"cert without key", func(c *Config) {
			c.Brokers = []string{"ssl://h"}
			c.CertFile = existing
		}, "CertFile and KeyFile"},
		{"keepalive under a second", func(c *Config) { c.KeepAlive = 500 * time.Millisecond }, "KeepAlive"},
		{"negative ack timeout", func(c *Config) { c.AckTimeout = -time.Second }, "AckTimeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.modify(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("no error, want one mentioning %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Camera: "cam7"}.WithDefaults()
	if c.ClientID != "inspectd-cam7" || c.TopicPrefix != "inspectd" || c.QoS != 1 || c.Mode != PerInspection {
		t.Errorf("defaults: client %q prefix %q qos %d mode %q", c.ClientID, c.TopicPrefix, c.QoS, c.Mode)
	}
	kept := Config{Camera: "cam7", ClientID: "fixed", SpoolMaxBytes: 5}.WithDefaults()
	if kept.ClientID != "fixed" || kept.SpoolMaxBytes != 5 {
		t.Errorf("WithDefaults overwrote set fields: %+v", kept)
	}
}

func TestTopics(t *testing.T) {
	tp := TopicsFor("plant1/inspectd", "cam0")
	want := map[string]string{
		tp.Availability:        "plant1/inspectd/cam0/availability",
		tp.Event:               "plant1/inspectd/cam0/event",
		tp.HeatmapTopic("abc"): "plant1/inspectd/cam0/heatmap/abc",
		tp.Status:              "plant1/inspectd/cam0/status",
		tp.Trigger:             "plant1/inspectd/cam0/trigger",
		tp.Feedback:            "plant1/inspectd/cam0/feedback",
	}
	for got, w := range want {
		if got != w {
			t.Errorf("topic %q, want %q", got, w)
		}
	}
}

func TestNewID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if !re.MatchString(id) {
			t.Fatalf("%q is not a version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
	}
}
