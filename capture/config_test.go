package capture

import (
	"strings"
	"testing"
	"time"
)

func TestParseURI(t *testing.T) {
	cases := []struct {
		uri    string
		kind   Kind
		target string
		errHas string
	}{
		{uri: "/dev/video0", kind: KindDevice, target: "/dev/video0"},
		{uri: "0", kind: KindDevice, target: "0"},
		{uri: " 2 ", kind: KindDevice, target: "2"},
		{uri: "v4l2:/dev/video1", kind: KindDevice, target: "/dev/video1"},
		{uri: "v4l2:cam", errHas: "neither an index"},
		{uri: "-1", errHas: "negative"},
		{uri: "/data/line3.avi", kind: KindFile, target: "/data/line3.avi"},
		{uri: "file:/data/a.mp4", kind: KindFile, target: "/data/a.mp4"},
		{uri: "file:///data/a.mp4", kind: KindFile, target: "/data/a.mp4"},
		{uri: "relative/clip.avi", kind: KindFile, target: "relative/clip.avi"},
		{uri: "rtsp://u:secret@10.0.0.5:554/s1", kind: KindStream, target: "rtsp://u:secret@10.0.0.5:554/s1"},
		{uri: "http://cam.local/mjpg", kind: KindStream, target: "http://cam.local/mjpg"},
		{uri: "rtsp:///nohost", errHas: "no host"},
		{uri: "ftp://x/y", errHas: "unknown scheme"},
		{uri: "gst:videotestsrc ! appsink", kind: KindGStreamer, target: "videotestsrc ! appsink"},
		{uri: "gst:nvarguscamerasrc ! nvvidconv ! fakesink", errHas: "appsink"},
		{uri: "gst:", errHas: "no pipeline"},
		{uri: "dir:/spool/cam1", kind: KindHotFolder, target: "/spool/cam1"},
		{uri: "DIR:/spool/cam1", kind: KindHotFolder, target: "/spool/cam1"},
		{uri: "dir:", errHas: "names no folder"},
		{uri: "   ", errHas: "empty"},
	}
	for _, c := range cases {
		t.Run(c.uri, func(t *testing.T) {
			kind, target, err := ParseURI(c.uri)
			if c.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("ParseURI(%q) error = %v, want one containing %q", c.uri, err, c.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURI(%q): %v", c.uri, err)
			}
			if kind != c.kind || target != c.target {
				t.Fatalf("ParseURI(%q) = %v %q, want %v %q", c.uri, kind, target, c.kind, c.target)
			}
		})
	}
}

func TestParseURIRedactsPassword(t *testing.T) {
	_, _, err := ParseURI("rtsp://admin:hunter2@/x")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v leaks or misses the password problem", err)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name   string
		cfg    Config
		errHas string
	}{
		{name: "camera defaults", cfg: Config{URI: "0"}},
		{name: "looping paced file", cfg: Config{URI: "a.avi", Loop: true, Pace: true, PaceFPS: 30}},
		{name: "loop on camera", cfg: Config{URI: "/dev/video0", Loop: true}, errHas: "video files only"},
		{name: "pace on hot folder", cfg: Config{URI: "dir:/x", Pace: true}, errHas: "video files only"},
		{name: "PaceFPS without Pace", cfg: Config{URI: "a.avi", PaceFPS: 10}, errHas: "Pace is off"},
		{name: "negative PaceFPS", cfg: Config{URI: "a.avi", Pace: true, PaceFPS: -1}, errHas: "negative"},
		{name: "negative MaxRate", cfg: Config{URI: "0", MaxRate: -2}, errHas: "MaxRate"},
		{name: "negative stall", cfg: Config{URI: "0", StallTimeout: -time.Second}, errHas: "StallTimeout"},
		{name: "min above max", cfg: Config{URI: "0", BackoffMin: time.Minute, BackoffMax: time.Second}, errHas: "exceeds"},
		{name: "only max, below default min", cfg: Config{URI: "0", BackoffMax: 100 * time.Millisecond}},
		{name: "only min, above default max", cfg: Config{URI: "0", BackoffMin: time.Minute}},
		{name: "bad uri", cfg: Config{URI: ""}, errHas: "empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if c.errHas == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				d := c.cfg.withDefaults()
				if d.BackoffMin > d.BackoffMax || d.StallTimeout <= 0 || d.PollInterval <= 0 {
					t.Fatalf("defaults inconsistent: %+v", d)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.errHas) {
				t.Fatalf("Validate error = %v, want one containing %q", err, c.errHas)
			}
		})
	}
}

func TestBackoffDoublesToCap(t *testing.T) {
	b := backoff{min: 10 * time.Millisecond, max: 70 * time.Millisecond}
	want := []time.Duration{10, 20, 40, 70, 70}
	for i, w := range want {
		if got := b.next(); got != w*time.Millisecond {
			t.Fatalf("step %d: backoff %v, want %v", i, got, w*time.Millisecond)
		}
	}
	b.reset()
	if got := b.next(); got != 10*time.Millisecond {
		t.Fatalf("after reset backoff %v, want 10ms", got)
	}
}

// FuzzParseURI: a source URI (a setting, so hostile until checked) is
// refused or names a known kind with a non-empty target; a GigE camera's
// name and features stay inside the first element of the pipeline they are
// written into, so they cannot add elements. Run with
// go test -run '^$' -fuzz FuzzParseURI -fuzztime 30s ./capture/
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"/dev/video0", "0", "v4l2:/dev/video1", "-1", "file:///data/a.mp4", "rtsp://u:p@10.0.0.5/s1",
		"gst:videotestsrc ! appsink", "dir:/spool/cam1",
		"gige:Basler-123?pixel-format=BayerRG8&width=640&exposure=2000&features=Gain=3",
		`gige:cam" ! filesink location=/etc/x ! fakesink name="`,
		"gige:?features=A=1%20B=2&trigger=software",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		kind, target, err := ParseURI(uri)
		if err != nil {
			return
		}
		if kind.String() == "unknown" || strings.TrimSpace(target) == "" {
			t.Fatalf("ParseURI(%q) = %v %q", uri, kind, target)
		}
		if kind != KindGigE || strings.HasPrefix(target, aravisTargetPrefix) {
			return
		}
		first, rest, ok := strings.Cut(target, " ! ")
		if !ok || !strings.HasPrefix(first, "aravissrc") || strings.Contains(first, "!") ||
			strings.Count(first, `"`)%2 != 0 || !strings.HasSuffix(rest, " ! appsink drop=true max-buffers=1") {
			t.Fatalf("ParseURI(%q): pipeline %q", uri, target)
		}
	})
}
