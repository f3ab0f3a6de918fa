package alerts

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	cases := []struct {
		name    CommandName
		payload string
		want    Command // compared when ok
		ok      bool
	}{
		{CommandThreshold, "12.5", Command{Name: CommandThreshold, Threshold: 12.5}, true},
		{CommandThreshold, " 3e2\n", Command{Name: CommandThreshold, Threshold: 300}, true},
		{CommandThreshold, "-1", Command{Name: CommandThreshold, Threshold: -1}, true}, // the range is the daemon's
		{CommandThreshold, "NaN", Command{}, false},
		{CommandThreshold, "Inf", Command{}, false},
		{CommandThreshold, "1e400", Command{}, false},
		{CommandThreshold, "", Command{}, false},
		{CommandThreshold, "12,5", Command{}, false},
		{CommandThreshold, `{"threshold": 3}`, Command{}, false},
		{CommandThreshold, strings.Repeat("1", MaxCommandBytes+1), Command{}, false},
		{CommandInspection, "ON", Command{Name: CommandInspection, Inspecting: true}, true},
		{CommandInspection, "off", Command{Name: CommandInspection}, true},
		{CommandInspection, "true", Command{}, false},
		{CommandInspection, "ON\x00", Command{}, false},
		{CommandModel, "RELOAD", Command{Name: CommandModel}, true},
		{CommandModel, "reload ", Command{Name: CommandModel}, true},
		{CommandModel, "/etc/passwd", Command{}, false},
		{"reboot", "now", Command{}, false},
	}
	for _, c := range cases {
		t.Run(string(c.name)+"/"+c.payload[:min(len(c.payload), 12)], func(t *testing.T) {
			got, err := ParseCommand(c.name, []byte(c.payload))
			if !c.ok {
				if !errors.Is(err, ErrCommand) {
					t.Fatalf("ParseCommand(%s, %q) = %+v, %v; want ErrCommand", c.name, c.payload, got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("ParseCommand(%s, %q) = %+v, %v; want %+v", c.name, c.payload, got, err, c.want)
			}
		})
	}
}

func TestCommandTopics(t *testing.T) {
	tp := TopicsFor("plant1/line3", "cam0")
	if got := tp.CommandTopic(CommandThreshold); got != "plant1/line3/cam0/threshold/set" {
		t.Errorf("threshold set topic %q", got)
	}
	if got := tp.StateTopic(CommandInspection); got != "plant1/line3/cam0/inspection/state" {
		t.Errorf("inspection state topic %q", got)
	}
}

// FuzzParseCommand: a command payload is refused with an error wrapping
// ErrCommand or accepted with a finite threshold; nothing else reaches the
// daemon. Run with go test -run '^$' -fuzz FuzzParseCommand -fuzztime 30s ./alerts/
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"12.5", " 3e2\n", "NaN", "0x1p-2", "ON", "off", "RELOAD", "1e400", "_1"} {
		for _, name := range CommandNames {
			f.Add(string(name), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, name string, payload []byte) {
		c, err := ParseCommand(CommandName(name), payload)
		if err != nil {
			if !errors.Is(err, ErrCommand) {
				t.Fatalf("error %v does not wrap ErrCommand", err)
			}
			return
		}
		if !slices.Contains(CommandNames, c.Name) || len(payload) > MaxCommandBytes {
			t.Fatalf("accepted %q for %q", payload, name)
		}
		if math.IsNaN(c.Threshold) || math.IsInf(c.Threshold, 0) {
			t.Fatalf("accepted threshold %v from %q", c.Threshold, payload)
		}
	})
}
