package config

import (
	"os"
	"strings"
	"testing"
)

func TestScadaSettingsNameTheVariable(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"INSPECTD_SPARKPLUG_GROUP": "plant/1"}, "INSPECTD_SPARKPLUG_GROUP"},
		{map[string]string{"INSPECTD_SPARKPLUG_NODE": "edge+1"}, "INSPECTD_SPARKPLUG_NODE"},
		{map[string]string{"INSPECTD_SPARKPLUG_DEVICE": "cam#0"}, "INSPECTD_SPARKPLUG_DEVICE"},
		{map[string]string{"INSPECTD_SPARKPLUG_PRIMARY_HOST": "a/b"}, "INSPECTD_SPARKPLUG_PRIMARY_HOST"},
		{map[string]string{"INSPECTD_SPARKPLUG": "maybe"}, "SPARKPLUG"},
		{map[string]string{"INSPECTD_HOMEASSISTANT_PREFIX": "ha/"}, "INSPECTD_HOMEASSISTANT_PREFIX"},
		{map[string]string{"INSPECTD_HOMEASSISTANT_PREFIX": "ha/+"}, "INSPECTD_HOMEASSISTANT_PREFIX"},
		{map[string]string{"INSPECTD_HOMEASSISTANT_NODE": "line 3"}, "INSPECTD_HOMEASSISTANT_NODE"},
	} {
		t.Run(c.want, func(t *testing.T) {
			t.Setenv("INSPECTD_SOURCE", "/dev/video0")
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			_, err := LoadDaemon()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v; want it to name %s", err, c.want)
			}
		})
	}
}

// A Daemon built in code (the demo does) gets the defaults too.
func TestScadaZeroValueIsValid(t *testing.T) {
	var s Scada
	if err := s.validate("cam0"); err != nil {
		t.Fatal(err)
	}
	if s.SparkplugGroup != "inspectd" || s.HAPrefix != "homeassistant" || s.HANode != "inspectd_cam0" || s.SparkplugDevice != "cam0" {
		t.Errorf("%+v", s)
	}
}

func TestScadaDefaults(t *testing.T) {
	t.Setenv("INSPECTD_SOURCE", "/dev/video0")
	t.Setenv("INSPECTD_CAMERA", "line3.cam")
	d, err := LoadDaemon()
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if d.Sparkplug || d.HomeAssistant || d.HeatmapLatest {
		t.Errorf("dialects on by default: %+v", d.Scada)
	}
	if d.SparkplugGroup != "inspectd" || d.SparkplugNode != host+"-line3.cam" || d.SparkplugDevice != "line3.cam" {
		t.Errorf("Sparkplug ids %q %q %q", d.SparkplugGroup, d.SparkplugNode, d.SparkplugDevice)
	}
	if d.HAPrefix != "homeassistant" || d.HANode != "inspectd_line3_cam" {
		t.Errorf("Home Assistant prefix %q node %q", d.HAPrefix, d.HANode)
	}
}
