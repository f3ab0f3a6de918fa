package capture

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// GigE Vision / GenICam cameras are read through Aravis's aravissrc
// GStreamer element (Debian: libaravis-0.8-0), in a pipeline built from the
// URI:
//
//	gige:NAME?pixel-format=Mono8&width=1280&height=1024&exposure=8000&gain=3&features=TriggerMode=On TriggerSource=Line1
//
// NAME is what Aravis calls the camera ("<vendor>-<serial>", e.g.
// Basler-21234567, as arv-tool-0.8 lists it), its serial number, or its IP
// address; empty means the first camera found. width and height set the
// camera's region (default: what it is set to). exposure is in µs, gain in
// dB (either turns the camera's automatic control off). features is a
// space-separated list of GenICam Name=Value assignments applied after
// those, for anything else: hardware trigger (TriggerMode=On
// TriggerSource=Line1 TriggerActivation=RisingEdge), frame rate, binning.
//
// trigger=software takes the camera away from aravissrc: aravis.go owns it
// through Aravis's C API and fires it once per Next (the MQTT trigger).

// gigeFormats maps GenICam pixel formats to the caps that ask aravissrc for
// them and the conversion to BGR.
var gigeFormats = map[string]string{
	"Mono8":        "video/x-raw,format=GRAY8 ! videoconvert",
	"Mono16":       "video/x-raw,format=GRAY16_LE ! videoconvert",
	"RGB8":         "video/x-raw,format=RGB ! videoconvert",
	"BGR8":         "video/x-raw,format=BGR ! videoconvert",
	"BayerRG8":     "video/x-bayer,format=rggb ! bayer2rgb ! videoconvert",
	"BayerBG8":     "video/x-bayer,format=bggr ! bayer2rgb ! videoconvert",
	"BayerGR8":     "video/x-bayer,format=grbg ! bayer2rgb ! videoconvert",
	"BayerGB8":     "video/x-bayer,format=gbrg ! bayer2rgb ! videoconvert",
	"YUV422_8":     "video/x-raw,format=UYVY ! videoconvert",
	"YUV422Packed": "video/x-raw,format=UYVY ! videoconvert",
}

// gigeSettings is a parsed gige: URI.
type gigeSettings struct {
	name          string
	pixelFormat   string // "" leaves the camera's
	width, height int    // 0 leaves the camera's
	exposure      float64
	gain          float64
	hasExposure   bool
	hasGain       bool
	features      string // space-separated Name=Value, applied last
	// softwareTrigger (trigger=software): the camera is owned in-process
	// through Aravis's C API (aravis.go) and takes one frame per Next.
	softwareTrigger bool
}

// parseGigE reads the part of a gige: URI after the prefix.
func parseGigE(uri, spec string) (gigeSettings, error) {
	var g gigeSettings
	name, query, _ := strings.Cut(spec, "?")
	g.name = strings.TrimSpace(name)
	q, err := url.ParseQuery(query)
	if err != nil {
		return g, fmt.Errorf("capture: GigE URI %q: options: %w", uri, err)
	}
	// Everything may land inside a pipeline description: nothing may close
	// a quoted string or start another element.
	unsafe := func(s string) bool { return strings.ContainsAny(s, "\"!\\\n\r\t") }
	if g.name != "" && unsafe(g.name) {
		return g, fmt.Errorf("capture: GigE camera name %q holds a quote, backslash, '!' or control character", g.name)
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vs := q[k]
		if len(vs) != 1 {
			return g, fmt.Errorf("capture: GigE URI %q gives %s %d times", uri, k, len(vs))
		}
		v := strings.TrimSpace(vs[0])
		switch k {
		case "pixel-format":
			if _, ok := gigeFormats[v]; !ok {
				return g, fmt.Errorf("capture: GigE pixel format %q not supported (want one of %s)", v, strings.Join(gigeFormatNames(), ", "))
			}
			g.pixelFormat = v
		case "exposure", "gain":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1e9 {
				return g, fmt.Errorf("capture: GigE %s %q is not a non-negative number", k, v)
			}
			if k == "exposure" {
				g.exposure, g.hasExposure = f, true
			} else {
				g.gain, g.hasGain = f, true
			}
		case "width", "height":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1<<16 {
				return g, fmt.Errorf("capture: GigE %s %q is not a whole number of pixels from 1 to 65536", k, v)
			}
			if k == "width" {
				g.width = n
			} else {
				g.height = n
			}
		case "features":
			if unsafe(v) {
				return g, fmt.Errorf("capture: GigE features %q hold a quote, backslash, '!' or control character", v)
			}
			for _, a := range strings.Fields(v) {
				if n, val, ok := strings.Cut(a, "="); !ok || n == "" || val == "" {
					return g, fmt.Errorf("capture: GigE feature %q is not Name=Value", a)
				}
			}
			g.features = strings.Join(strings.Fields(v), " ")
		case "trigger":
			if v != "software" {
				return g, fmt.Errorf("capture: GigE trigger %q not supported (want software; a hardware trigger is set with features=TriggerMode=On TriggerSource=Line1)", v)
			}
			g.softwareTrigger = true
		default:
			return g, fmt.Errorf("capture: unknown GigE option %q (want pixel-format, width, height, exposure, gain, features, trigger)", k)
		}
	}
	return g, nil
}

// gigeTarget turns the part of a gige: URI after the prefix into the
// backend's target: a GStreamer pipeline ending in appsink, or, with
// trigger=software, the Aravis target (aravisTargetPrefix and the spec).
func gigeTarget(uri, spec string) (string, error) {
	g, err := parseGigE(uri, spec)
	if err != nil {
		return "", err
	}
	if g.softwareTrigger {
		return aravisTargetPrefix + spec, nil
	}
	return g.pipeline(), nil
}

// pipeline is the aravissrc pipeline reading the camera continuously (or
// on its hardware trigger).
func (g gigeSettings) pipeline() string {
	var b strings.Builder
	b.WriteString("aravissrc")
	if g.name != "" {
		fmt.Fprintf(&b, " camera-name=%q", g.name)
	}
	if g.hasExposure {
		fmt.Fprintf(&b, " exposure=%s", strconv.FormatFloat(g.exposure, 'g', -1, 64))
	}
	if g.hasGain {
		fmt.Fprintf(&b, " gain=%s", strconv.FormatFloat(g.gain, 'g', -1, 64))
	}
	if g.features != "" {
		fmt.Fprintf(&b, " features=%q", g.features)
	}
	var size string
	if g.height > 0 {
		size += fmt.Sprintf(",height=%d", g.height)
	}
	if g.width > 0 {
		size += fmt.Sprintf(",width=%d", g.width)
	}
	format := g.pixelFormat
	if format == "" {
		format = "Mono8"
	}
	// aravissrc sets the camera's region from the caps it is asked for.
	caps, convert, _ := strings.Cut(gigeFormats[format], " ! ")
	fmt.Fprintf(&b, " ! %s%s ! %s ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1", caps, size, convert)
	return b.String()
}

func gigeFormatNames() []string {
	var n []string
	for k := range gigeFormats {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
