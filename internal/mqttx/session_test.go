package mqttx

import (
	"strings"
	"testing"
)

func TestOptionsBrokers(t *testing.T) {
	for _, c := range []struct {
		brokers []string
		want    string // first broker as paho has it, or part of the error
		err     bool
	}{
		{[]string{"tcp://127.0.0.1"}, "tcp://127.0.0.1:1883", false},
		{[]string{"mqtts://broker.example"}, "mqtts://broker.example:8883", false},
		{[]string{"tcp://127.0.0.1:1999"}, "tcp://127.0.0.1:1999", false},
		{[]string{"http://x:1"}, "scheme", true},
		{[]string{"tcp://:1883"}, "no host", true},
		{nil, "no broker", true},
	} {
		o, err := Conn{Brokers: c.brokers}.Options("id", nil)
		if c.err {
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v: error %v, want one saying %q", c.brokers, err, c.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", c.brokers, err)
			continue
		}
		if got := o.Servers[0].String(); got != c.want {
			t.Errorf("%v: broker %s, want %s", c.brokers, got, c.want)
		}
	}
}

func TestOptionsTLSFiles(t *testing.T) {
	_, err := Conn{Brokers: []string{"ssl://127.0.0.1"}, CAFile: "/nonexistent/ca.pem"}.Options("id", nil)
	if err == nil || !strings.Contains(err.Error(), "CA file") {
		t.Errorf("error %v, want one naming the CA file", err)
	}
}
