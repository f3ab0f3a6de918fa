package redact

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	cases := []struct{ in, want string }{
		{"rtsp://user:secret@10.0.0.5/stream1", "rtsp://***@10.0.0.5/stream1"},
		{"tcp://user:secret@broker:1883", "tcp://***@broker:1883"},
		{"ssl://u:p@ss@broker:8883", "ssl://***@broker:8883"}, // unencoded @ in the password
		{"mqtts://token@broker", "mqtts://***@broker"},
		{"brokers tcp://a:1@h1:1883, ssl://b:2@h2:8883", "brokers tcp://***@h1:1883, ssl://***@h2:8883"},
		{`dial "tcp://u:pw@h:1" failed`, `dial "tcp://***@h:1" failed`},
		{"gst:rtspsrc location=rtsp://admin:hunter2@cam/1 ! decodebin ! appsink", "gst:rtspsrc location=rtsp://***@cam/1 ! decodebin ! appsink"},
		{"rtsp://cam/1?user=x@y", "rtsp://cam/1?user=x@y"}, // @ after the path is not user info
		{"tcp://broker:1883", "tcp://broker:1883"},
		{"/dev/video0", "/dev/video0"},
		{"mail me@example.com", "mail me@example.com"},
	}
	for _, c := range cases {
		if got := String(c.in); got != c.want {
			t.Errorf("String(%q) = %q; want %q", c.in, got, c.want)
		}
	}
}

func TestErrorKeepsChain(t *testing.T) {
	base := fmt.Errorf("connecting to tcp://u:secret@h:1883: %w", fs.ErrPermission)
	err := Error(base)
	if strings.Contains(err.Error(), "secret") || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Error: %v", err)
	}
	if plain := errors.New("no url"); Error(plain) != plain {
		t.Error("an error without a URL should pass unchanged")
	}
}

// Every way a secret can reach a log line through slog is redacted.
func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(Handler(slog.NewTextHandler(&buf, nil))).With("source", "rtsp://u:s3cret@cam/1")
	u, _ := url.Parse("tcp://u:s3cret@broker:1883")
	log.WithGroup("g").Info("connecting to tcp://u:s3cret@b:1",
		"broker", "tcp://u:s3cret@broker:1883",
		"err", fmt.Errorf("dial tcp://u:s3cret@b:1: refused"),
		"url", u,
		"list", []string{"ssl://u:s3cret@a", "tcp://u:s3cret@b"},
		slog.Group("nested", "uri", "rtsp://u:s3cret@x"),
		"n", 3)
	out := buf.String()
	if strings.Contains(out, "s3cret") {
		t.Fatalf("secret in log: %s", out)
	}
	for _, want := range []string{"rtsp://***@cam/1", "tcp://***@broker:1883", "n=3", "g.nested.uri=rtsp://***@x"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q: %s", want, out)
		}
	}
}
