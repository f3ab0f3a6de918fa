package capture

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

// Aravis 0.8 (libaravis-0.8.so.0) and the GLib calls it needs, loaded with
// dlopen on first use so that neither building nor running inspectd needs
// Aravis unless a gige: source with trigger=software is opened. The types
// are opaque; GError is GLib's public struct.

typedef struct { uint32_t domain; int32_t code; char *message; } inspectd_gerror;
typedef void arv_obj;

typedef arv_obj *(*f_camera_new)(const char *, inspectd_gerror **);
typedef int (*f_camera_is_gv)(arv_obj *);
typedef arv_obj *(*f_camera_get_device)(arv_obj *);
typedef void (*f_gv_set_stream_options)(arv_obj *, int);
typedef void (*f_camera_str)(arv_obj *, const char *, inspectd_gerror **);
typedef void (*f_camera_set_int)(arv_obj *, const char *, int64_t, inspectd_gerror **);
typedef int64_t (*f_camera_get_int)(arv_obj *, const char *, inspectd_gerror **);
typedef void (*f_camera_double)(arv_obj *, double, inspectd_gerror **);
typedef void (*f_camera_enum)(arv_obj *, int, inspectd_gerror **);
typedef int (*f_device_set_features)(arv_obj *, const char *, inspectd_gerror **);
typedef unsigned int (*f_camera_get_payload)(arv_obj *, inspectd_gerror **);
typedef arv_obj *(*f_camera_create_stream)(arv_obj *, void *, void *, inspectd_gerror **);
typedef void (*f_camera_void)(arv_obj *, inspectd_gerror **);
typedef arv_obj *(*f_buffer_new)(size_t, void *);
typedef void (*f_stream_push)(arv_obj *, arv_obj *);
typedef arv_obj *(*f_stream_pop)(arv_obj *, uint64_t);
typedef int (*f_buffer_int)(arv_obj *);
typedef uint32_t (*f_buffer_u32)(arv_obj *);
typedef uint64_t (*f_buffer_u64)(arv_obj *);
typedef const void *(*f_buffer_data)(arv_obj *, size_t *);
typedef void (*f_buffer_padding)(arv_obj *, int *, int *);
typedef void (*f_unref)(void *);
typedef void (*f_error_free)(inspectd_gerror *);
typedef void (*f_object_set)(void *, const char *, ...);

static struct {
	int loaded;
	f_camera_new camera_new;
	f_camera_is_gv camera_is_gv_device;
	f_camera_get_device camera_get_device;
	f_gv_set_stream_options gv_device_set_stream_options;
	f_camera_str camera_set_pixel_format_from_string, camera_set_trigger;
	f_camera_set_int camera_set_integer;
	f_camera_get_int camera_get_integer;
	f_camera_double camera_set_exposure_time, camera_set_gain;
	f_camera_enum camera_set_exposure_time_auto, camera_set_gain_auto, camera_set_acquisition_mode;
	f_device_set_features device_set_features_from_string;
	f_camera_get_payload camera_get_payload;
	f_camera_create_stream camera_create_stream;
	f_camera_void camera_start_acquisition, camera_stop_acquisition, camera_software_trigger;
	f_buffer_new buffer_new;
	f_stream_push stream_push_buffer;
	f_stream_pop stream_timeout_pop_buffer;
	f_buffer_int buffer_get_status, buffer_get_payload_type, buffer_get_image_width, buffer_get_image_height;
	f_buffer_u32 buffer_get_image_pixel_format;
	f_buffer_u64 buffer_get_timestamp, buffer_get_system_timestamp, buffer_get_frame_id;
	f_buffer_data buffer_get_image_data;
	f_buffer_padding buffer_get_image_padding;
	f_unref object_unref;
	f_error_free error_free;
	f_object_set object_set;
} arv;

// inspectd_arv_load opens the libraries once; it returns NULL or a
// malloc'd message. Not thread-safe: Go calls it under a sync.Once.
static char *inspectd_arv_load(const char *lib) {
	char msg[512];
	void *a = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (a == NULL) {
		snprintf(msg, sizeof msg, "%s", dlerror());
		return strdup(msg);
	}
	void *glib = dlopen("libglib-2.0.so.0", RTLD_NOW | RTLD_LOCAL);
	void *gobject = dlopen("libgobject-2.0.so.0", RTLD_NOW | RTLD_LOCAL);
	if (glib == NULL || gobject == NULL) {
		snprintf(msg, sizeof msg, "%s", dlerror());
		return strdup(msg);
	}
	const char *missing = NULL;
#define SYM(h, field, name) do { *(void **)(&arv.field) = dlsym(h, name); if (arv.field == NULL && missing == NULL) missing = name; } while (0)
	SYM(a, camera_new, "arv_camera_new");
	SYM(a, camera_is_gv_device, "arv_camera_is_gv_device");
	SYM(a, camera_get_device, "arv_camera_get_device");
	SYM(a, gv_device_set_stream_options, "arv_gv_device_set_stream_options");
	SYM(a, camera_set_pixel_format_from_string, "arv_camera_set_pixel_format_from_string");
	SYM(a, camera_set_trigger, "arv_camera_set_trigger");
	SYM(a, camera_set_integer, "arv_camera_set_integer");
	SYM(a, camera_get_integer, "arv_camera_get_integer");
	SYM(a, camera_set_exposure_time, "arv_camera_set_exposure_time");
	SYM(a, camera_set_gain, "arv_camera_set_gain");
	SYM(a, camera_set_exposure_time_auto, "arv_camera_set_exposure_time_auto");
	SYM(a, camera_set_gain_auto, "arv_camera_set_gain_auto");
	SYM(a, camera_set_acquisition_mode, "arv_camera_set_acquisition_mode");
	SYM(a, device_set_features_from_string, "arv_device_set_features_from_string");
	SYM(a, camera_get_payload, "arv_camera_get_payload");
	SYM(a, camera_create_stream, "arv_camera_create_stream");
	SYM(a, camera_start_acquisition, "arv_camera_start_acquisition");
	SYM(a, camera_stop_acquisition, "arv_camera_stop_acquisition");
	SYM(a, camera_software_trigger, "arv_camera_software_trigger");
	SYM(a, buffer_new, "arv_buffer_new");
	SYM(a, stream_push_buffer, "arv_stream_push_buffer");
	SYM(a, stream_timeout_pop_buffer, "arv_stream_timeout_pop_buffer");
	SYM(a, buffer_get_status, "arv_buffer_get_status");
	SYM(a, buffer_get_payload_type, "arv_buffer_get_payload_type");
	SYM(a, buffer_get_image_width, "arv_buffer_get_image_width");
	SYM(a, buffer_get_image_height, "arv_buffer_get_image_height");
	SYM(a, buffer_get_image_pixel_format, "arv_buffer_get_image_pixel_format");
	SYM(a, buffer_get_timestamp, "arv_buffer_get_timestamp");
	SYM(a, buffer_get_system_timestamp, "arv_buffer_get_system_timestamp");
	SYM(a, buffer_get_frame_id, "arv_buffer_get_frame_id");
	SYM(a, buffer_get_image_data, "arv_buffer_get_image_data");
	SYM(a, buffer_get_image_padding, "arv_buffer_get_image_padding");
	SYM(gobject, object_unref, "g_object_unref");
	SYM(gobject, object_set, "g_object_set");
	SYM(glib, error_free, "g_error_free");
#undef SYM
	if (missing != NULL) {
		snprintf(msg, sizeof msg, "%s not found in libaravis-0.8.so.0 (Aravis 0.8.26 or later needed)", missing);
		return strdup(msg);
	}
	arv.loaded = 1;
	return NULL;
}

// take turns a GError into a malloc'd "what: message" and frees it.
static char *take(inspectd_gerror *e, const char *what) {
	const char *m = (e != NULL && e->message != NULL) ? e->message : "failed";
	size_t n = strlen(what) + strlen(m) + 3;
	char *s = malloc(n);
	if (s != NULL)
		snprintf(s, n, "%s: %s", what, m);
	if (e != NULL)
		arv.error_free(e);
	return s;
}

typedef struct {
	const char *name;          // NULL: the first camera found
	const char *pixel_format;  // NULL: the camera's
	const char *features;      // NULL: none
	int64_t width, height;     // 0: the camera's
	double exposure, gain;     // < 0: the camera's
	int no_packet_socket;
	int n_buffers;
	uint64_t max_payload;
} inspectd_arv_settings;

typedef struct {
	arv_obj *camera, *stream;
	size_t payload;
} inspectd_arv;

// inspectd_arv_close stops acquisition and frees the stream (its buffers
// with it) and the camera.
static void inspectd_arv_close(inspectd_arv *h) {
	if (h == NULL)
		return;
	if (h->camera != NULL && h->stream != NULL) {
		inspectd_gerror *e = NULL;
		arv.camera_stop_acquisition(h->camera, &e);
		if (e != NULL)
			arv.error_free(e);
	}
	if (h->stream != NULL)
		arv.object_unref(h->stream);
	if (h->camera != NULL)
		arv.object_unref(h->camera);
	free(h);
}

// inspectd_arv_open connects to the camera, configures it for software
// trigger, and starts acquisition; on failure it returns NULL and sets *err
// to a malloc'd message.
static inspectd_arv *inspectd_arv_open(const inspectd_arv_settings *s, char **err) {
	inspectd_gerror *e = NULL;
	*err = NULL;
	inspectd_arv *h = calloc(1, sizeof *h);
	if (h == NULL) {
		*err = strdup("out of memory");
		return NULL;
	}
	h->camera = arv.camera_new(s->name, &e);
	if (h->camera == NULL || e != NULL) {
		*err = take(e, "connecting to the camera");
		inspectd_arv_close(h);
		return NULL;
	}
#define STEP(what) do { if (e != NULL) { *err = take(e, what); inspectd_arv_close(h); return NULL; } } while (0)
	if (s->no_packet_socket && arv.camera_is_gv_device(h->camera))
		arv.gv_device_set_stream_options(arv.camera_get_device(h->camera), 1); // ARV_GV_STREAM_OPTION_PACKET_SOCKET_DISABLED
	if (s->pixel_format != NULL) {
		arv.camera_set_pixel_format_from_string(h->camera, s->pixel_format, &e);
		STEP("setting PixelFormat");
	}
	if (s->width > 0) {
		arv.camera_set_integer(h->camera, "Width", s->width, &e);
		STEP("setting Width");
	}
	if (s->height > 0) {
		arv.camera_set_integer(h->camera, "Height", s->height, &e);
		STEP("setting Height");
	}
	if (s->exposure >= 0) {
		// Cameras without automatic exposure refuse to switch it off.
		arv.camera_set_exposure_time_auto(h->camera, 0, &e); // ARV_AUTO_OFF
		if (e != NULL) { arv.error_free(e); e = NULL; }
		arv.camera_set_exposure_time(h->camera, s->exposure, &e);
		STEP("setting the exposure time");
	}
	if (s->gain >= 0) {
		arv.camera_set_gain_auto(h->camera, 0, &e);
		if (e != NULL) { arv.error_free(e); e = NULL; }
		arv.camera_set_gain(h->camera, s->gain, &e);
		STEP("setting the gain");
	}
	if (s->features != NULL) {
		arv.device_set_features_from_string(arv.camera_get_device(h->camera), s->features, &e);
		STEP("setting the features");
	}
	arv.camera_set_acquisition_mode(h->camera, 0, &e); // ARV_ACQUISITION_MODE_CONTINUOUS
	STEP("setting AcquisitionMode=Continuous");
	arv.camera_set_trigger(h->camera, "Software", &e); // FrameStart: TriggerMode=On, TriggerSource=Software
	if (e != NULL) {
		// Some cameras refuse part of what Aravis sets (TriggerActivation):
		// the two features that matter, directly.
		inspectd_gerror *e2 = NULL;
		arv.device_set_features_from_string(arv.camera_get_device(h->camera), "TriggerMode=On TriggerSource=Software", &e2);
		if (e2 == NULL) {
			arv.error_free(e);
			e = NULL;
		} else {
			arv.error_free(e2);
		}
	}
	STEP("setting TriggerMode=On TriggerSource=Software");
	h->payload = arv.camera_get_payload(h->camera, &e);
	STEP("reading PayloadSize");
	if (h->payload == 0 || h->payload > s->max_payload) {
		char msg[160];
		snprintf(msg, sizeof msg, "the camera's PayloadSize %zu bytes is outside 1..%llu (the image limit)", h->payload, (unsigned long long)s->max_payload);
		*err = strdup(msg);
		inspectd_arv_close(h);
		return NULL;
	}
	h->stream = arv.camera_create_stream(h->camera, NULL, NULL, &e);
	if (h->stream == NULL || e != NULL) {
		*err = take(e, "creating the stream");
		inspectd_arv_close(h);
		return NULL;
	}
	// A whole frame arrives in one burst: a receive buffer of at least
	// twice the frame and 1 MiB (the kernel caps it at net.core.rmem_max).
	// Aravis's own "auto" sizes it to one frame, which for small frames is
	// smaller than the kernel's default and lost most of them here.
	if (arv.camera_is_gv_device(h->camera)) {
		uint64_t size = 2 * (uint64_t)h->payload;
		if (size < (1 << 20))
			size = 1 << 20;
		if (size > (1u << 30))
			size = 1u << 30;
		arv.object_set(h->stream, "socket-buffer", 0, "socket-buffer-size", (int)size, NULL); // ARV_GV_STREAM_SOCKET_BUFFER_FIXED
	}
	for (int i = 0; i < s->n_buffers; i++)
		arv.stream_push_buffer(h->stream, arv.buffer_new(h->payload, NULL));
	arv.camera_start_acquisition(h->camera, &e);
	STEP("starting acquisition");
#undef STEP
	return h;
}

// inspectd_arv_trigger fires the camera; NULL or a malloc'd message.
static char *inspectd_arv_trigger(inspectd_arv *h) {
	inspectd_gerror *e = NULL;
	arv.camera_software_trigger(h->camera, &e);
	return e != NULL ? take(e, "TriggerSoftware") : NULL;
}

// inspectd_arv_get_int reads an integer feature (a round trip to the camera).
static int64_t inspectd_arv_get_int(inspectd_arv *h, const char *name, char **err) {
	inspectd_gerror *e = NULL;
	int64_t v = arv.camera_get_integer(h->camera, name, &e);
	*err = e != NULL ? take(e, name) : NULL;
	return v;
}

typedef struct {
	arv_obj *buffer;
	int status, payload_type, width, height, padding_x;
	uint32_t pixel_format;
	const void *data;
	size_t size;
	uint64_t timestamp, system_timestamp, frame_id;
} inspectd_arv_frame;

// inspectd_arv_pop waits up to timeout_us for a filled buffer; 1 when f
// holds one, which must go back with inspectd_arv_requeue.
static int inspectd_arv_pop(inspectd_arv *h, uint64_t timeout_us, inspectd_arv_frame *f) {
	memset(f, 0, sizeof *f);
	arv_obj *b = arv.stream_timeout_pop_buffer(h->stream, timeout_us);
	if (b == NULL)
		return 0;
	f->buffer = b;
	f->status = arv.buffer_get_status(b);
	f->payload_type = arv.buffer_get_payload_type(b);
	f->timestamp = arv.buffer_get_timestamp(b);
	f->system_timestamp = arv.buffer_get_system_timestamp(b);
	f->frame_id = arv.buffer_get_frame_id(b);
	if (f->status == 0 && f->payload_type == 1) { // SUCCESS, IMAGE
		int py = 0;
		f->width = arv.buffer_get_image_width(b);
		f->height = arv.buffer_get_image_height(b);
		f->pixel_format = arv.buffer_get_image_pixel_format(b);
		arv.buffer_get_image_padding(b, &f->padding_x, &py);
		f->data = arv.buffer_get_image_data(b, &f->size);
	}
	return 1;
}

static void inspectd_arv_requeue(inspectd_arv *h, arv_obj *b) { arv.stream_push_buffer(h->stream, b); }
*/
import "C"

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/imageops"
)

// A gige: camera with trigger=software is owned in-process through Aravis
// 0.8's C API, loaded with dlopen when such a source is first opened (the
// binary neither links nor needs libaravis otherwise). Each Next of the
// source sends TriggerSoftware and returns the next buffer the camera
// sends, converted to BGR. Hardware trigger and continuous acquisition stay
// with aravissrc (gige.go).

// aravisTargetPrefix marks the target ParseURI gives a gige: URI with
// trigger=software; the rest is the URI after "gige:".
const aravisTargetPrefix = "aravis-software-trigger:"

func init() {
	registerBackend(backend{
		name: "aravis",
		claims: func(kind Kind, target string) bool {
			return kind == KindGigE && strings.HasPrefix(target, aravisTargetPrefix)
		},
		open:     openAravis,
		onDemand: true,
	})
}

var (
	aravisOnce sync.Once
	aravisErr  error
)

// loadAravis dlopens libaravis-0.8.so.0 (and GLib) once.
func loadAravis() error {
	aravisOnce.Do(func() { aravisErr = loadAravisLib("libaravis-0.8.so.0") })
	return aravisErr
}

func loadAravisLib(lib string) error {
	cs := C.CString(lib)
	defer C.free(unsafe.Pointer(cs))
	if msg := C.inspectd_arv_load(cs); msg != nil {
		defer C.free(unsafe.Pointer(msg))
		return fmt.Errorf("loading Aravis for the GigE software trigger (install the Debian package libaravis-0.8-0): %s", C.GoString(msg))
	}
	return nil
}

// cError turns a malloc'd message from the shim into an error and frees it.
func cError(msg *C.char) error {
	if msg == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(msg))
	return errors.New(C.GoString(msg))
}

const (
	// aravisBuffers is how many buffers the stream fills in turn.
	aravisBuffers = 4
	// aravisPoll is how long one Read waits for a buffer.
	aravisPoll = 100 * time.Millisecond
	// aravisCheckEvery: a camera waiting for its trigger is asked for its
	// PayloadSize this often, so that a camera that vanished or was
	// reconfigured larger is noticed without a trigger.
	aravisCheckEvery = time.Second
)

// aravisCapture is one connection to a camera in software-trigger mode.
type aravisCapture struct {
	// mu guards h against Close while Trigger runs on another goroutine.
	mu     sync.Mutex
	h      *C.inspectd_arv
	closed atomic.Bool
	// fired is the UnixNano time just before the last trigger was sent.
	fired     atomic.Int64
	maxPixels int64
	log       *slog.Logger
	lastCheck time.Time
	taken     time.Time // the time of the frame Read returned last
	err       error     // why Read returned false
	dropped   error     // why Read dropped the last frame, until Dropped
	// broken is set by a failed trigger: Read ends the session with it.
	broken atomic.Pointer[error]
}

func openAravis(cfg Config, target string) (capturer, error) {
	spec := strings.TrimPrefix(target, aravisTargetPrefix)
	g, err := parseGigE("gige:"+spec, spec)
	if err != nil {
		return nil, err
	}
	if err := loadAravis(); err != nil {
		return nil, err
	}
	maxPixels := cfg.ImageLimits.MaxPixels
	if maxPixels <= 0 {
		maxPixels = imageops.DefaultMaxPixels
	}
	var cs C.inspectd_arv_settings
	var frees []unsafe.Pointer
	defer func() {
		for _, p := range frees {
			C.free(p)
		}
	}()
	str := func(s string) *C.char {
		if s == "" {
			return nil
		}
		p := C.CString(s)
		frees = append(frees, unsafe.Pointer(p))
		return p
	}
	cs.name = str(g.name)
	cs.pixel_format = str(g.pixelFormat)
	cs.features = str(g.features)
	cs.width, cs.height = C.int64_t(g.width), C.int64_t(g.height)
	cs.exposure, cs.gain = -1, -1
	if g.hasExposure {
		cs.exposure = C.double(g.exposure)
	}
	if g.hasGain {
		cs.gain = C.double(g.gain)
	}
	// With CAP_NET_RAW Aravis receives through a packet socket; a camera on
	// loopback (the simulator) is read through an ordinary UDP socket, as
	// the service (without the capability) always does, so tests run as
	// root take the service's path.
	if ip := net.ParseIP(g.name); ip != nil && ip.IsLoopback() {
		cs.no_packet_socket = 1
	}
	cs.n_buffers = aravisBuffers
	// Four bytes a pixel is more than any format read here needs.
	cs.max_payload = C.uint64_t(maxPixels * 4)
	var msg *C.char
	h := C.inspectd_arv_open(&cs, &msg)
	if h == nil {
		return nil, fmt.Errorf("opening GigE camera %q through Aravis: %w", g.name, cError(msg))
	}
	return &aravisCapture{h: h, maxPixels: maxPixels, log: cfg.Logger, lastCheck: time.Now()}, nil
}

// Trigger sends TriggerSoftware.
func (a *aravisCapture) Trigger() (time.Time, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.h == nil || a.closed.Load() {
		return time.Time{}, errors.New("camera closed")
	}
	now := time.Now()
	a.fired.Store(now.UnixNano())
	if err := cError(C.inspectd_arv_trigger(a.h)); err != nil {
		err = fmt.Errorf("firing the camera: %w", err)
		a.broken.Store(&err)
		return now, err
	}
	return now, nil
}

// Read waits up to aravisPoll for the camera's next buffer. With none it
// returns true and leaves m empty (the camera waits for its trigger); every
// aravisCheckEvery it then checks the camera is still there.
func (a *aravisCapture) Read(m *gocv.Mat) bool {
	if e := a.broken.Load(); e != nil {
		a.err = *e
		return false
	}
	var f C.inspectd_arv_frame
	if C.inspectd_arv_pop(a.h, C.uint64_t(aravisPoll/time.Microsecond), &f) == 0 {
		if time.Since(a.lastCheck) < aravisCheckEvery {
			return true
		}
		a.lastCheck = time.Now()
		var msg *C.char
		name := C.CString("PayloadSize")
		payload := C.inspectd_arv_get_int(a.h, name, &msg)
		C.free(unsafe.Pointer(name))
		if err := cError(msg); err != nil {
			a.err = fmt.Errorf("camera not answering: %w", err)
			return false
		}
		if uint64(payload) > uint64(a.h.payload) {
			a.err = fmt.Errorf("the camera's PayloadSize grew from %d to %d bytes (Width, Height or PixelFormat changed); reopening", a.h.payload, payload)
			return false
		}
		return true
	}
	arrived := time.Now()
	a.lastCheck = arrived
	defer C.inspectd_arv_requeue(a.h, f.buffer)
	switch {
	case f.status == 5: // ARV_BUFFER_STATUS_SIZE_MISMATCH
		a.err = fmt.Errorf("the camera's image no longer fits the %d-byte buffers (Width, Height or PixelFormat changed); reopening", a.h.payload)
		return false
	case f.status != 0:
		a.drop(fmt.Errorf("frame %d arrived incomplete (%s)", uint64(f.frame_id), bufferStatus(int(f.status))))
		return true
	case f.payload_type != 1:
		a.drop(fmt.Errorf("frame %d is not an image (GigE Vision payload type %d)", uint64(f.frame_id), int(f.payload_type)))
		return true
	}
	// The frame was taken after the trigger and before it arrived; Aravis
	// stamps the buffer with the host's clock when its first packet came.
	// A buffer stamped before the last trigger answers an earlier one.
	taken := arrived
	if ts := int64(f.system_timestamp); ts > 0 {
		t := time.Unix(0, ts)
		if t.Before(arrived) {
			taken = t
		}
	}
	if fired := a.fired.Load(); fired == 0 || taken.UnixNano() < fired {
		a.log.Debug("GigE frame from before the last trigger dropped", "frame_id", uint64(f.frame_id))
		return true
	}
	w, h := int(f.width), int(f.height)
	data := unsafe.Slice((*byte)(f.data), int(f.size))
	if err := toBGR(m, uint32(f.pixel_format), w, h, int(f.padding_x), data, a.maxPixels); err != nil {
		a.drop(fmt.Errorf("frame %d: %w", uint64(f.frame_id), err))
		return true
	}
	a.taken = taken
	return true
}

func (a *aravisCapture) drop(err error) {
	a.log.Warn("GigE frame dropped", "err", err)
	a.dropped = err
}

// Dropped returns (once) why the last frame was dropped.
func (a *aravisCapture) Dropped() error {
	err := a.dropped
	a.dropped = nil
	return err
}

// FrameTime is the capture time of the frame Read returned last.
func (a *aravisCapture) FrameTime() time.Time { return a.taken }

// Err is why Read returned false.
func (a *aravisCapture) Err() error { return a.err }

func (a *aravisCapture) FPS() float64 { return 0 }

// Close stops acquisition and frees the stream, its buffers and the camera.
// For a camera that vanished this takes Aravis several seconds.
func (a *aravisCapture) Close() error {
	a.closed.Store(true)
	a.mu.Lock()
	h := a.h
	a.h = nil
	a.mu.Unlock()
	if h != nil {
		C.inspectd_arv_close(h)
	}
	return nil
}

func bufferStatus(s int) string {
	names := []string{"success", "cleared", "timeout", "missing packets", "wrong packet id", "size mismatch", "filling", "aborted", "payload not supported"}
	if s >= 0 && s < len(names) {
		return names[s]
	}
	return fmt.Sprintf("unknown (%d)", s)
}

// GenICam pixel format codes (PFNC) read by the software-trigger source.
const (
	pfMono8      = 0x01080001
	pfMono16     = 0x01100007
	pfBayerGR8   = 0x01080008
	pfBayerRG8   = 0x01080009
	pfBayerGB8   = 0x0108000A
	pfBayerBG8   = 0x0108000B
	pfRGB8       = 0x02180014
	pfBGR8       = 0x02180015
	pfYUV422UYVY = 0x0210001F // YUV422Packed, YUV422_8_UYVY
	pfYUV422YUYV = 0x02100032 // YUV422_8
)

// toBGR converts one camera image (copied out of Aravis's buffer) into m as
// 8-bit BGR, as every other source delivers; sizes come from the camera and
// are checked against maxPixels and the data before anything is allocated.
func toBGR(m *gocv.Mat, format uint32, w, h, paddingX int, data []byte, maxPixels int64) error {
	if w <= 0 || h <= 0 || int64(w)*int64(h) > maxPixels {
		return fmt.Errorf("%w: camera image of %dx%d pixels, limit %d", imageops.ErrTooLarge, w, h, maxPixels)
	}
	if paddingX != 0 {
		return fmt.Errorf("camera image lines padded by %d bytes: not supported", paddingX)
	}
	var (
		typ  gocv.MatType
		bpp  int
		code gocv.ColorConversionCode = -1
	)
	switch format {
	case pfMono8:
		typ, bpp, code = gocv.MatTypeCV8UC1, 1, gocv.ColorGrayToBGR
	case pfMono16:
		typ, bpp = gocv.MatTypeCV16UC1, 2
	// GenICam names a Bayer pattern by its first two pixels, OpenCV by
	// the second row's: GenICam RG is OpenCV's BG, and so on.
	case pfBayerRG8:
		typ, bpp, code = gocv.MatTypeCV8UC1, 1, gocv.ColorBayerBGToBGR
	case pfBayerBG8:
		typ, bpp, code = gocv.MatTypeCV8UC1, 1, gocv.ColorBayerRGToBGR
	case pfBayerGR8:
		typ, bpp, code = gocv.MatTypeCV8UC1, 1, gocv.ColorBayerGBToBGR
	case pfBayerGB8:
		typ, bpp, code = gocv.MatTypeCV8UC1, 1, gocv.ColorBayerGRToBGR
	case pfRGB8:
		typ, bpp, code = gocv.MatTypeCV8UC3, 3, gocv.ColorBGRToRGB // the same swap
	case pfBGR8:
		typ, bpp = gocv.MatTypeCV8UC3, 3
	case pfYUV422UYVY:
		typ, bpp, code = gocv.MatTypeCV8UC2, 2, gocv.ColorYUVToBGRUYVY
	case pfYUV422YUYV:
		typ, bpp, code = gocv.MatTypeCV8UC2, 2, gocv.ColorYUVToBGRYUY2
	default:
		return fmt.Errorf("camera pixel format 0x%08x not supported (Mono8, Mono16, Bayer*8, RGB8, BGR8, YUV422)", format)
	}
	need := w * h * bpp
	if len(data) < need {
		return fmt.Errorf("camera image of %dx%d pixels holds %d bytes, %d expected", w, h, len(data), need)
	}
	src, err := gocv.NewMatFromBytes(h, w, typ, data[:need])
	if err != nil {
		return fmt.Errorf("wrapping the camera image: %w", err)
	}
	defer src.Close()
	switch {
	case format == pfMono16:
		gray := gocv.NewMat()
		defer gray.Close()
		src.ConvertToWithParams(&gray, gocv.MatTypeCV8UC1, 1.0/256, 0)
		gocv.CvtColor(gray, m, gocv.ColorGrayToBGR)
	case code >= 0:
		gocv.CvtColor(src, m, code)
	default:
		src.CopyTo(m)
	}
	if m.Empty() {
		return errors.New("converting the camera image gave nothing")
	}
	return nil
}
