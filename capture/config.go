package capture

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/inspectd/inspectd/imageops"
	redactpkg "github.com/inspectd/inspectd/internal/redact"
)

// Kind is the sort of source a URI names.
type Kind int

const (
	KindDevice    Kind = iota + 1 // V4L2 camera: "/dev/video0" or "0"
	KindFile                      // video file: "file:/path" or a plain path
	KindStream                    // network stream: rtsp://, rtsps://, http://, https://
	KindGStreamer                 // GStreamer pipeline ending in appsink: "gst:..."
	KindHotFolder                 // folder of image files, one per part: "dir:/path"
	KindGigE                      // GigE Vision camera through Aravis: "gige:name?options"
)

func (k Kind) String() string {
	switch k {
	case KindDevice:
		return "device"
	case KindFile:
		return "file"
	case KindStream:
		return "stream"
	case KindGStreamer:
		return "gstreamer"
	case KindHotFolder:
		return "hotfolder"
	case KindGigE:
		return "gige"
	}
	return "unknown"
}

// Defaults applied by Config.withDefaults when a field is zero.
const (
	DefaultStallTimeout = 10 * time.Second
	DefaultBackoffMin   = 500 * time.Millisecond
	DefaultBackoffMax   = 30 * time.Second
	DefaultPollInterval = 250 * time.Millisecond
	DefaultSettleTime   = time.Second
	// fallbackFPS paces files whose container does not state a frame rate.
	fallbackFPS = 25.0
)

// Config selects and tunes a source. Only URI is required.
//
// URI syntax (the prefix picks the kind; see ParseURI):
//
//	/dev/video0  or  0                 V4L2 camera (path or index)
//	file:/data/line3.avi  or  /data/line3.avi   video file
//	rtsp://user:pass@10.0.0.5/stream1  network stream (rtsp, rtsps, http, https)
//	gst:nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1920,height=1080 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1
//	                                   GStreamer pipeline (Jetson CSI cameras); must end in appsink
//	dir:/var/spool/inspectd/cam1       hot folder of PNG/JPEG/BMP files, one file per part
//	gige:Basler-21234567?pixel-format=BayerRG8&exposure=8000&gain=3&features=TriggerMode=On TriggerSource=Line1
//	                                   GigE Vision camera through Aravis's aravissrc (see parseGigE)
//	gige:192.168.10.7?trigger=software GigE Vision camera owned through Aravis's C API, one
//	                                   software trigger per frame taken (see aravis.go)
type Config struct {
	URI string

	// Loop restarts a video file at its end instead of ending with io.EOF.
	Loop bool
	// Pace makes a video file behave like a camera: frames are read at the
	// file's frame rate (or PaceFPS) and only the newest is kept. Without
	// Pace a file is replayed losslessly: every frame, in order, as fast as
	// the consumer takes them.
	Pace bool
	// PaceFPS overrides the file's own frame rate when Pace is set.
	PaceFPS float64

	// MaxRate caps how many frames per second Next returns (0: no cap), so
	// a continuously triggered daemon does not spin on a fast camera.
	MaxRate float64

	// StallTimeout: a live source that yields no frame for this long (or is
	// stuck this long inside the driver) is closed and reopened.
	StallTimeout time.Duration
	// BackoffMin and BackoffMax bound the exponential wait between reopen
	// attempts; the wait resets once frames flow again.
	BackoffMin time.Duration
	BackoffMax time.Duration

	// PollInterval is how often a hot folder is rescanned.
	PollInterval time.Duration
	// SettleTime: a hot-folder file is taken only once its size and
	// modification time have not changed for this long, so files still
	// being written are left alone.
	SettleTime time.Duration

	// ImageLimits bound hot-folder files before they are decoded (zero
	// fields: imageops' defaults) and live frames before they are delivered.
	ImageLimits imageops.Limits

	// OnFailed, when set, is called for each hot-folder file moved to
	// failed/ by the folder itself (unreadable, too large, empty, found
	// with a crash marker), with the part's name, size and modification
	// time and the reason, so the part still gets an answer (the daemon's
	// error event). It runs with the folder locked: it must not call back.
	OnFailed func(part Frame, reason error)

	// Logger receives state changes and failures; nil uses slog.Default().
	Logger *slog.Logger
}

// ParseURI splits a source URI into its kind and the target handed to the
// backend (device index or path, file path, stream URL, pipeline, folder).
func ParseURI(uri string) (Kind, string, error) {
	s := strings.TrimSpace(uri)
	if s == "" {
		return 0, "", errors.New("capture: empty source URI")
	}
	lower := strings.ToLower(s)
	switch {
	case strings.HasPrefix(lower, "dir:"):
		p := strings.TrimSpace(s[len("dir:"):])
		if p == "" {
			return 0, "", fmt.Errorf("capture: hot folder URI %q names no folder", uri)
		}
		return KindHotFolder, p, nil
	case strings.HasPrefix(lower, "gst:"):
		p := strings.TrimSpace(s[len("gst:"):])
		if p == "" {
			return 0, "", fmt.Errorf("capture: GStreamer URI %q holds no pipeline", uri)
		}
		if !strings.Contains(p, "appsink") {
			return 0, "", fmt.Errorf("capture: GStreamer pipeline %q must end in appsink so OpenCV can pull frames", p)
		}
		return KindGStreamer, p, nil
	case strings.HasPrefix(lower, "gige:"):
		p, err := gigeTarget(uri, strings.TrimSpace(s[len("gige:"):]))
		if err != nil {
			return 0, "", err
		}
		return KindGigE, p, nil
	case strings.HasPrefix(lower, "file:"):
		p := strings.TrimSpace(s[len("file:"):])
		// Accept both file:/x and file:///x.
		p = strings.TrimPrefix(p, "//")
		if p == "" {
			return 0, "", fmt.Errorf("capture: file URI %q names no file", uri)
		}
		return KindFile, p, nil
	case strings.HasPrefix(lower, "v4l2:"):
		return parseDevice(uri, strings.TrimSpace(s[len("v4l2:"):]))
	}
	if i := strings.Index(lower, "://"); i > 0 {
		switch lower[:i] {
		case "rtsp", "rtsps", "rtmp", "http", "https":
			u, err := url.Parse(s)
			if err != nil || u.Host == "" {
				return 0, "", fmt.Errorf("capture: stream URL %q has no host", redact(s))
			}
			return KindStream, s, nil
		default:
			return 0, "", fmt.Errorf("capture: unknown scheme %q in source URI (want rtsp, rtsps, rtmp, http, https, file:, dir:, gst:, gige: or a device)", lower[:i])
		}
	}
	if strings.HasPrefix(s, "/dev/") {
		return parseDevice(uri, s)
	}
	if _, err := strconv.Atoi(s); err == nil {
		return parseDevice(uri, s)
	}
	return KindFile, s, nil
}

func parseDevice(uri, dev string) (Kind, string, error) {
	if n, err := strconv.Atoi(dev); err == nil {
		if n < 0 {
			return 0, "", fmt.Errorf("capture: device index %d in %q is negative", n, uri)
		}
		return KindDevice, dev, nil
	}
	if !strings.HasPrefix(dev, "/dev/") {
		return 0, "", fmt.Errorf("capture: device %q in %q is neither an index nor a /dev path", dev, uri)
	}
	return KindDevice, dev, nil
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	kind, _, err := ParseURI(c.URI)
	if err != nil {
		return err
	}
	if (c.Loop || c.Pace || c.PaceFPS != 0) && kind != KindFile {
		return fmt.Errorf("capture: Loop, Pace and PaceFPS apply to video files only, not to a %s source", kind)
	}
	if c.PaceFPS < 0 {
		return fmt.Errorf("capture: PaceFPS %g is negative", c.PaceFPS)
	}
	if c.PaceFPS > 0 && !c.Pace {
		return fmt.Errorf("capture: PaceFPS %g is set but Pace is off", c.PaceFPS)
	}
	if c.MaxRate < 0 {
		return fmt.Errorf("capture: MaxRate %g is negative", c.MaxRate)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"StallTimeout", c.StallTimeout},
		{"BackoffMin", c.BackoffMin},
		{"BackoffMax", c.BackoffMax},
		{"PollInterval", c.PollInterval},
		{"SettleTime", c.SettleTime},
	} {
		if d.v < 0 {
			return fmt.Errorf("capture: %s %v is negative", d.name, d.v)
		}
	}
	c = c.withDefaults()
	if c.BackoffMin > c.BackoffMax {
		return fmt.Errorf("capture: BackoffMin %v exceeds BackoffMax %v", c.BackoffMin, c.BackoffMax)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.StallTimeout == 0 {
		c.StallTimeout = DefaultStallTimeout
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = DefaultBackoffMin
		if c.BackoffMax > 0 {
			c.BackoffMin = min(c.BackoffMin, c.BackoffMax)
		}
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = max(DefaultBackoffMax, c.BackoffMin)
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.SettleTime == 0 {
		c.SettleTime = DefaultSettleTime
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// redact hides the user info of any URL in s (a stream URL, a GStreamer
// pipeline's location=) so it never reaches logs or Status.
func redact(s string) string { return redactpkg.String(s) }
