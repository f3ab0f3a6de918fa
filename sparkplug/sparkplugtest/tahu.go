// Package sparkplugtest checks Sparkplug B payloads in tests with Eclipse
// Tahu's own JavaScript codec (npm package sparkplug-payload, installed by
// scripts/setup.sh into .deps/node), run with node: an implementation nobody
// on this project wrote. Tests skip when node or the package is absent,
// and fail instead under INSPECTD_REQUIRE_ASSETS=1.
package sparkplugtest

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/internal/testenv"
)

//go:embed tahu.js
var script []byte

// Raw is one MQTT message as received.
type Raw struct {
	Topic   string `json:"topic"`
	Payload []byte `json:"payload"` // base64 in JSON
}

// Tahu runs the codec.
type Tahu struct{ node, modules, script string }

// Require returns the codec, or skips the test when it cannot run.
func Require(t testing.TB) Tahu {
	t.Helper()
	node, mods := testenv.RequireNodePackage(t, "sparkplug-payload")
	p := filepath.Join(t.TempDir(), "tahu.js")
	if err := os.WriteFile(p, script, 0o600); err != nil {
		t.Fatal(err)
	}
	return Tahu{node, mods, p}
}

func (h Tahu) run(t testing.TB, mode string, stdin []byte) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.node, h.script, mode)
	cmd.Env = append(cmd.Environ(), "NODE_PATH="+h.modules)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tahu.js %s: %v\n%s", mode, err, stderr.String())
	}
	return out
}

// Encode turns a payload in sparkplug-payload's JSON form, e.g.
// {"timestamp":1,"metrics":[{"name":"Config/Threshold","type":"Double","value":12.5}]},
// into protobuf bytes.
func (h Tahu) Encode(t testing.TB, payload string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(h.run(t, "encode", []byte(payload)))))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Msg is a decoded message as Tahu's decoder returns it (64-bit numbers
// as decimal strings).
type Msg struct {
	Topic   string `json:"topic"`
	Payload struct {
		Timestamp Num      `json:"timestamp"`
		Seq       *Num     `json:"seq"`
		Metrics   []Metric `json:"metrics"`
	} `json:"payload"`
}

// Metric is one decoded metric.
type Metric struct {
	Name      *string         `json:"name"`
	Alias     *Num            `json:"alias"`
	Type      string          `json:"type"`
	Value     json.RawMessage `json:"value"`
	Timestamp *Num            `json:"timestamp"`
}

// Num reads a JSON number or a decimal string.
type Num uint64

func (j *Num) UnmarshalJSON(b []byte) error {
	v, err := strconv.ParseUint(strings.Trim(string(b), `"`), 10, 64)
	*j = Num(v)
	return err
}

// Decode decodes the Sparkplug B messages among msgs in order: those under
// spBv1.0/ but STATE messages (JSON) and commands (which tests write
// themselves).
func (h Tahu) Decode(t testing.TB, msgs []Raw) []Msg {
	t.Helper()
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	n := 0
	for _, m := range msgs {
		if !strings.HasPrefix(m.Topic, "spBv1.0/") || strings.HasPrefix(m.Topic, "spBv1.0/STATE/") || strings.Contains(m.Topic, "CMD/") {
			continue
		}
		n++
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
	}
	out := h.run(t, "decode", in.Bytes())
	var res []Msg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var m Msg
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("reading tahu.js output: %v\n%s", err, out)
		}
		res = append(res, m)
	}
	if len(res) != n {
		t.Fatalf("tahu.js decoded %d of %d messages", len(res), n)
	}
	return res
}

// Kind is the message type of the topic: NBIRTH, DDATA, ...
func (m Msg) Kind() string {
	if p := strings.Split(m.Topic, "/"); len(p) > 2 {
		return p[2]
	}
	return ""
}

// Metric finds a metric by name, or by alias when alias is not 0.
func (m Msg) Metric(t testing.TB, name string, alias uint64) Metric {
	t.Helper()
	for _, x := range m.Payload.Metrics {
		if (x.Name != nil && *x.Name == name) || (alias != 0 && x.Alias != nil && uint64(*x.Alias) == alias) {
			return x
		}
	}
	t.Fatalf("%s: no metric %q (alias %d) in %+v", m.Topic, name, alias, m.Payload.Metrics)
	return Metric{}
}

// Str is the value as text (strings unquoted, null as "null").
func (x Metric) Str() string { return strings.Trim(string(x.Value), `"`) }

// Float is the value as a number.
func (x Metric) Float(t testing.TB) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(x.Str(), 64)
	if err != nil {
		t.Fatalf("metric %v: value %s: %v", x.Name, x.Value, err)
	}
	return f
}
