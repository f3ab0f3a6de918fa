#ifndef INSPECTD_CAPTURE_FFMPEG_H
#define INSPECTD_CAPTURE_FFMPEG_H
#ifdef __cplusplus
extern "C" {
#endif

// An OpenCV VideoCapture on the FFmpeg back end opened with open and read
// timeouts, which gocv (0.32) cannot pass.
typedef void *InspectdCapture;

InspectdCapture inspectd_ffmpeg_open(const char *uri, int open_ms, int read_ms);
int inspectd_capture_read(InspectdCapture c, void *mat);
double inspectd_capture_get(InspectdCapture c, int prop);
void inspectd_capture_close(InspectdCapture c);

#ifdef __cplusplus
}
#endif
#endif
