package config

import (
	"strings"
	"testing"
	"time"
)

// Every bad value is refused with an error naming its variable.
func TestLoadDaemonNamesTheVariable(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"INSPECTD_SOURCE": ""}, "INSPECTD_SOURCE"},
		{map[string]string{"INSPECTD_TRIGGER": "gpio"}, "INSPECTD_TRIGGER"},
		{map[string]string{"INSPECTD_MAX_RATE": "0"}, "INSPECTD_MAX_RATE"},
		{map[string]string{"INSPECTD_TRIGGER_DELAY": "11s"}, "INSPECTD_TRIGGER_DELAY"},
		{map[string]string{"INSPECTD_TRIGGER_DELAY": "-1ms"}, "INSPECTD_TRIGGER_DELAY"},
		{map[string]string{"INSPECTD_TRIGGER_DELAY": "soon"}, "TRIGGER_DELAY"},
		{map[string]string{"INSPECTD_MAX_RATE": "fast"}, "MAX_RATE"},
		{map[string]string{"INSPECTD_CAMERA": "line/3"}, "INSPECTD_CAMERA"},
		{map[string]string{"INSPECTD_EVENTS": "all"}, "INSPECTD_EVENTS"},
		{map[string]string{"INSPECTD_JPEG_QUALITY": "0"}, "INSPECTD_JPEG_QUALITY"},
		{map[string]string{"INSPECTD_HTTP_ADDR": "9464"}, "INSPECTD_HTTP_ADDR"},
		{map[string]string{"INSPECTD_SPOOL_MAX_BYTES": "10"}, "INSPECTD_SPOOL_MAX_BYTES"},
		{map[string]string{"INSPECTD_MQTT_CERT_FILE": "/c.pem"}, "INSPECTD_MQTT_CERT_FILE"},
		{map[string]string{"INSPECTD_MQTT_KEEPALIVE": "10ms"}, "INSPECTD_MQTT_KEEPALIVE"},
		{map[string]string{"INSPECTD_RUNTIME": "tflite"}, "INSPECTD_RUNTIME"},
		{map[string]string{"INSPECTD_PROVIDER": "rocm"}, "INSPECTD_PROVIDER"},
		{map[string]string{"INSPECTD_THREADS": "-1"}, "INSPECTD_THREADS"},
		{map[string]string{"INSPECTD_MAX_BATCH": "0"}, "INSPECTD_MAX_BATCH"},
		{map[string]string{"INSPECTD_LOG_LEVEL": "loud"}, "INSPECTD_LOG_LEVEL"},
		{map[string]string{"INSPECTD_STALL_TIMEOUT": "1ms"}, "INSPECTD_STALL_TIMEOUT"},
		{map[string]string{"INSPECTD_FRR": "0.5"}, "INSPECTD_FRR"},
		{map[string]string{"INSPECTD_FRR": "-0.01"}, "INSPECTD_FRR"},
		{map[string]string{"INSPECTD_FRR": "NaN"}, "INSPECTD_FRR"},
		{map[string]string{"INSPECTD_FRR": "2%"}, "FRR"},
		{map[string]string{"INSPECTD_FRR": "0.02", "INSPECTD_THRESHOLD": "7"}, "INSPECTD_FRR"},
		{map[string]string{"INSPECTD_REFINE": "yes"}, "INSPECTD_REFINE"},
		{map[string]string{"INSPECTD_REFINE_AFTER": "5"}, "INSPECTD_REFINE_AFTER"},
		{map[string]string{"INSPECTD_REFINE_AFTER": "-1"}, "INSPECTD_REFINE_AFTER"},
		{map[string]string{"INSPECTD_REFINE_WINDOW": "50"}, "INSPECTD_REFINE_WINDOW"},
		{map[string]string{"INSPECTD_REFINE_MIN_FACTOR": "-0.5"}, "INSPECTD_REFINE_MIN_FACTOR"},
		{map[string]string{"INSPECTD_REFINE_MIN_FACTOR": "1.5"}, "INSPECTD_REFINE_MIN_FACTOR"},
		{map[string]string{"INSPECTD_REFINE_MAX_FACTOR": "0.9"}, "INSPECTD_REFINE_MAX_FACTOR"},
		{map[string]string{"INSPECTD_DRIFT_WINDOW": "2"}, "INSPECTD_DRIFT_WINDOW"},
		{map[string]string{"INSPECTD_DRIFT_LIMIT": "-1"}, "INSPECTD_DRIFT_LIMIT"},
		{map[string]string{"INSPECTD_DEFECT_RATE": "1"}, "INSPECTD_DEFECT_RATE"},
		{map[string]string{"INSPECTD_DEFECT_RATE": "-0.01"}, "INSPECTD_DEFECT_RATE"},
		{map[string]string{"INSPECTD_REJECT_WINDOW": "19"}, "INSPECTD_REJECT_WINDOW"},
		{map[string]string{"INSPECTD_REJECT_WINDOW": "10001"}, "INSPECTD_REJECT_WINDOW"},
		{map[string]string{"INSPECTD_FEEDBACK_MEMORY": "-5"}, "INSPECTD_FEEDBACK_MEMORY"},
		{map[string]string{"INSPECTD_MAX_IMAGE_PIXELS": "-5"}, "INSPECTD_MAX_IMAGE_PIXELS"},
		{map[string]string{"INSPECTD_MAX_IMAGE_PIXELS": "2000000000"}, "INSPECTD_MAX_IMAGE_PIXELS"},
		{map[string]string{"INSPECTD_MAX_IMAGE_BYTES": "-1"}, "INSPECTD_MAX_IMAGE_BYTES"},
		// TLS and plain TCP mixed: on main a TLS failure fell back to plain
		// TCP and sent the password in clear, without a warning.
		{map[string]string{"INSPECTD_MQTT_BROKER": "ssl://a:8883,tcp://b:1883", "INSPECTD_MQTT_USERNAME": "u", "INSPECTD_MQTT_PASSWORD": "p"}, "INSPECTD_MQTT_BROKER"},
		{map[string]string{"INSPECTD_MQTT_BROKER": "tcp://b:1883, mqtts://a"}, "mixes TLS"},
	}
	for _, c := range cases {
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

func TestLoadDaemonDefaults(t *testing.T) {
	t.Setenv("INSPECTD_SOURCE", "dir:/srv/parts")
	t.Setenv("INSPECTD_MQTT_BROKER", "ssl://a:8883, mqtts://b:8883")
	d, err := LoadDaemon()
	if err != nil {
		t.Fatal(err)
	}
	if d.Camera != "cam0" || d.Trigger != "continuous" || d.TriggerDelay != 0 || d.MaxBatch != 2 || d.Engine != "onnxruntime" || !d.Heatmaps {
		t.Errorf("defaults %+v", d)
	}
	if d.FRR != 0 || d.Refine != "auto" || !d.Refining(1) || d.Refining(0.25) || d.RefineAfter != 100 || d.StateDir != "/var/lib/inspectd" || d.DriftWindow != 50 {
		t.Errorf("operating defaults %+v", d)
	}
	t.Setenv("INSPECTD_THRESHOLD", "7")
	if d, err := LoadDaemon(); err != nil || d.Refining(1) {
		t.Errorf("a fixed threshold still refines (%v)", err)
	}
	if b := d.Brokers(); len(b) != 2 || b[1] != "mqtts://b:8883" {
		t.Errorf("brokers %v", b)
	}
}

// A Daemon made in code (the demo) gets the operating defaults.
func TestValidateFillsOperatingDefaults(t *testing.T) {
	d := Daemon{Runtime: Runtime{Engine: "opencv", Provider: "cpu", MaxBatch: 1}, Camera: "c", Source: "x.avi", Model: "m.zip",
		Trigger: "continuous", MaxRate: 1, JPEGQuality: 85, Events: "inspection", SpoolDir: "/tmp/x/spool",
		SpoolMaxBytes: 1 << 20, StallTimeout: time.Second, StatusEvery: time.Second, KeepAlive: time.Second, LogLevel: "info"}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if d.Refine != "auto" || d.RefineAfter != 100 || d.RefineWindow != 1000 || d.RefineMin != 0 || d.RefineMax != 2 ||
		d.DriftWindow != 50 || d.DriftLimit != 1 || d.FeedbackMemory != 5000 || d.StateDir != "/tmp/x" {
		t.Errorf("defaults %+v", d)
	}
}

// An error about the broker list does not repeat its password.
func TestLoadDaemonErrorRedactsBroker(t *testing.T) {
	t.Setenv("INSPECTD_SOURCE", "/dev/video0")
	t.Setenv("INSPECTD_MQTT_BROKER", "ssl://user:s3cret@a:8883,tcp://user:s3cret@b:1883")
	_, err := LoadDaemon()
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "ssl://***@a:8883") {
		t.Fatalf("error %v; want the mix refused without the password", err)
	}
}

func TestRefining(t *testing.T) {
	for _, tc := range []struct {
		refine    string
		threshold float64
		minFactor float64
		want      bool
	}{
		{"auto", 0, 1, true},     // a leave-one-out threshold: the line only raises it
		{"auto", 0, 0.25, false}, // a fold threshold the line could lower
		{"auto", 7, 1, false},    // a fixed threshold never moves
		{"on", 0, 0.25, true},
		{"on", 7, 1, false},
		{"off", 0, 1, false},
	} {
		d := Daemon{Refine: tc.refine, Threshold: tc.threshold}
		if got := d.Refining(tc.minFactor); got != tc.want {
			t.Errorf("REFINE=%s THRESHOLD=%g, lower bound %g: refining %v, want %v", tc.refine, tc.threshold, tc.minFactor, got, tc.want)
		}
	}
}
