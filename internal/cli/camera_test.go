package cli

import (
	"context"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/inspectd/inspectd/config"
	"github.com/inspectd/inspectd/internal/testenv"
)

// connectTest connects a paho client to url, failing the test on error.
func connectTest(t *testing.T, opts *mqtt.ClientOptions) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(opts.SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting %s: %v", opts.ClientID, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// A calibration run takes its triggers from its own topic, as its own
// client: a message on the daemon's trigger topic is the running daemon's
// and does not capture a calibration part, and the daemon stays connected.
// On main the calibration subscribed to the daemon's trigger topic with the
// daemon's client id (and opened the daemon's spool, which its lock refuses).
func TestCalibrationTriggerTopic(t *testing.T) {
	broker := testenv.StartMosquitto(t)
	t.Setenv("INSPECTD_SOURCE", "/dev/video0")
	t.Setenv("INSPECTD_CAMERA", "cam0")
	t.Setenv("INSPECTD_TRIGGER", "mqtt")
	t.Setenv("INSPECTD_MQTT_BROKER", broker.URL())
	t.Setenv("INSPECTD_SPOOL_DIR", t.TempDir())
	dc, err := config.LoadDaemon()
	if err != nil {
		t.Fatal(err)
	}
	// The running daemon's connection, with the daemon's client id.
	daemonConn := connectTest(t, mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID("inspectd-cam0"))

	plc := connectTest(t, mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID("test-plc"))
	online := make(chan struct{})
	var once sync.Once
	tok := plc.Subscribe("inspectd/cam0/calibrate/availability", 1, func(_ mqtt.Client, m mqtt.Message) {
		if string(m.Payload()) == "online" {
			once.Do(func() { close(online) })
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribing: %v", tok.Error())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub, closePub, err := openCalibrationTrigger(ctx, dc)
	if err != nil {
		t.Fatal(err)
	}
	defer closePub()
	if got, want := pub.Topics().Trigger, "inspectd/cam0/calibrate/trigger"; got != want {
		t.Errorf("calibration trigger topic %q; want %q", got, want)
	}
	if got, want := calibrationClientID(dc), "inspectd-cam0-calibrate"; got != want {
		t.Errorf("calibration client id %q; want %q", got, want)
	}
	// Availability "online" is published after the trigger subscription.
	select {
	case <-online:
	case <-ctx.Done():
		t.Fatal("the calibration never came online on inspectd/cam0/calibrate/availability")
	}
	// In this order from one client: were the calibration subscribed to the
	// daemon's topic, the broker would deliver the daemon's trigger first.
	for _, m := range []struct{ topic, part string }{
		{"inspectd/cam0/trigger", "daemon-part"},
		{"inspectd/cam0/calibrate/trigger", "calibration-part"},
	} {
		if tok := plc.Publish(m.topic, 1, false, m.part); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publishing to %s: %v", m.topic, tok.Error())
		}
	}
	select {
	case trig := <-pub.Trigger():
		if trig.PartID != "calibration-part" {
			t.Errorf("calibration captured on trigger %q; want only the calibration topic's (calibration-part)", trig.PartID)
		}
	case <-ctx.Done():
		t.Fatal("no calibration trigger from inspectd/cam0/calibrate/trigger")
	}
	// The broker drops a client when another connects with its id, before
	// that one's messages flow: a round trip shows the daemon still on.
	if tok := daemonConn.Publish("inspectd/cam0/ping", 1, false, "x"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil || !daemonConn.IsConnected() {
		t.Errorf("the daemon's connection was dropped by the calibration's: %v", tok.Error())
	}
}
