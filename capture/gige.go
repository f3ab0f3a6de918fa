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

// gigePipeline turns the part of a gige: URI after the prefix into a
// GStreamer pipeline ending in appsink.
func gigePipeline(uri, spec string) (string, error) {
	name, query, _ := strings.Cut(spec, "?")
	name = strings.TrimSpace(name)
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("capture: GigE URI %q: options: %w", uri, err)
	}
	// Everything lands inside a pipeline description: nothing may close
	// a quoted string or start another element.
	unsafe := func(s string) bool { return strings.ContainsAny(s, "\"!\\\n\r\t") }
	var b strings.Builder
	b.WriteString("aravissrc")
	if name != "" {
		if unsafe(name) {
			return "", fmt.Errorf("capture: GigE camera name %q holds a quote, backslash, '!' or control character", name)
		}
		fmt.Fprintf(&b, " camera-name=%q", name)
	}
	format := "Mono8"
	var features, size string
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vs := q[k]
		if len(vs) != 1 {
			return "", fmt.Errorf("capture: GigE URI %q gives %s %d times", uri, k, len(vs))
		}
		v := strings.TrimSpace(vs[0])
		switch k {
		case "pixel-format":
			if _, ok := gigeFormats[v]; !ok {
				return "", fmt.Errorf("capture: GigE pixel format %q not supported (want one of %s)", v, strings.Join(gigeFormatNames(), ", "))
			}
			format = v
		case "exposure", "gain":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1e9 {
				return "", fmt.Errorf("capture: GigE %s %q is not a non-negative number", k, v)
			}
			fmt.Fprintf(&b, " %s=%s", k, strconv.FormatFloat(f, 'g', -1, 64))
		case "width", "height":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1<<16 {
				return "", fmt.Errorf("capture: GigE %s %q is not a whole number of pixels from 1 to 65536", k, v)
			}
			size += fmt.Sprintf(",%s=%d", k, n)
		case "features":
			if unsafe(v) {
				return "", fmt.Errorf("capture: GigE features %q hold a quote, backslash, '!' or control character", v)
			}
			for _, a := range strings.Fields(v) {
				if n, val, ok := strings.Cut(a, "="); !ok || n == "" || val == "" {
					return "", fmt.Errorf("capture: GigE feature %q is not Name=Value", a)
				}
			}
			features = strings.Join(strings.Fields(v), " ")
		default:
			return "", fmt.Errorf("capture: unknown GigE option %q (want pixel-format, width, height, exposure, gain, features)", k)
		}
	}
	if features != "" {
		fmt.Fprintf(&b, " features=%q", features)
	}
	// aravissrc sets the camera's region from the caps it is asked for.
	caps, convert, _ := strings.Cut(gigeFormats[format], " ! ")
	fmt.Fprintf(&b, " ! %s%s ! %s ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1", caps, size, convert)
	return b.String(), nil
}

func gigeFormatNames() []string {
	var n []string
	for k := range gigeFormats {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
