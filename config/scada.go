package config

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Scada holds the optional SCADA dialects spoken beside the JSON topics:
// Sparkplug B, Home Assistant MQTT discovery, and the retained latest
// heatmap. They use the broker and credentials of INSPECTD_MQTT_*, each over
// its own MQTT connection.
type Scada struct {
	Sparkplug         bool   `envconfig:"SPARKPLUG" default:"false" desc:"also speak Sparkplug B (spBv1.0/...): the daemon an edge node, the camera a device"`
	SparkplugGroup    string `envconfig:"SPARKPLUG_GROUP" default:"inspectd" desc:"Sparkplug group id"`
	SparkplugNode     string `envconfig:"SPARKPLUG_NODE" desc:"Sparkplug edge node id (default <hostname>-<camera>)"`
	SparkplugDevice   string `envconfig:"SPARKPLUG_DEVICE" desc:"Sparkplug device id of the camera (default the camera id)"`
	SparkplugHost     string `envconfig:"SPARKPLUG_PRIMARY_HOST" desc:"primary host application id: births wait for its STATE online (empty: do not wait)"`
	SparkplugClientID string `envconfig:"SPARKPLUG_CLIENT_ID" desc:"MQTT client id of the Sparkplug connection (default <edge node>-sparkplug)"`
	HomeAssistant     bool   `envconfig:"HOMEASSISTANT" default:"false" desc:"publish Home Assistant MQTT discovery (retained) for this camera; implies HEATMAP_LATEST"`
	HAPrefix          string `envconfig:"HOMEASSISTANT_PREFIX" default:"homeassistant" desc:"Home Assistant discovery prefix"`
	HANode            string `envconfig:"HOMEASSISTANT_NODE" desc:"node id in the discovery topics, letters digits _ - (default inspectd_<camera>)"`
	Commands          bool   `envconfig:"COMMANDS" default:"false" desc:"accept commands on <prefix>/<camera>/{threshold,inspection,model}/set and publish their retained .../state"`
	HeatmapLatest     bool   `envconfig:"HEATMAP_LATEST" default:"false" desc:"also publish the latest defect heatmap, retained, on <prefix>/<camera>/heatmap/latest"`
}

var haID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// validate fills defaults that depend on the camera and names the variable
// of the first bad value.
func (s *Scada) validate(camera string) error {
	bad := func(name string, v any, want string) error {
		return fmt.Errorf("configuration: %s_%s=%v: %s", Prefix, name, v, want)
	}
	// Empty means the default, also for a Daemon built in code.
	if s.SparkplugGroup == "" {
		s.SparkplugGroup = "inspectd"
	}
	if s.HAPrefix == "" {
		s.HAPrefix = "homeassistant"
	}
	if s.SparkplugNode == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "inspectd"
		}
		s.SparkplugNode = sparkplugSafe(host) + "-" + sparkplugSafe(camera)
	}
	if s.SparkplugDevice == "" {
		s.SparkplugDevice = sparkplugSafe(camera)
	}
	for _, f := range []struct{ name, v string }{
		{"SPARKPLUG_GROUP", s.SparkplugGroup}, {"SPARKPLUG_NODE", s.SparkplugNode}, {"SPARKPLUG_DEVICE", s.SparkplugDevice},
	} {
		if !sparkplugID(f.v) {
			return bad(f.name, f.v, "want a non-empty id of at most 256 bytes without / + # (a Sparkplug topic level)")
		}
	}
	if s.SparkplugHost != "" && !sparkplugID(s.SparkplugHost) {
		return bad("SPARKPLUG_PRIMARY_HOST", s.SparkplugHost, "want an id without / + # (or empty)")
	}
	if strings.ContainsAny(s.HAPrefix, "+#") || strings.HasPrefix(s.HAPrefix, "/") || strings.HasSuffix(s.HAPrefix, "/") {
		return bad("HOMEASSISTANT_PREFIX", s.HAPrefix, "want topic levels without + # and without a leading or trailing /")
	}
	if s.HANode == "" {
		s.HANode = "inspectd_" + regexp.MustCompile(`[^A-Za-z0-9_-]`).ReplaceAllString(camera, "_")
	}
	if !haID.MatchString(s.HANode) {
		return bad("HOMEASSISTANT_NODE", s.HANode, "want 1..64 letters, digits, _ or -")
	}
	return nil
}

func sparkplugID(s string) bool {
	return s != "" && len(s) <= 256 && utf8.ValidString(s) && !strings.ContainsAny(s, "/+#\x00")
}

// sparkplugSafe replaces what a Sparkplug id cannot hold.
func sparkplugSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '+' || r == '#' || r == 0 {
			return '_'
		}
		return r
	}, s)
}
