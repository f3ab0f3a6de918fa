#include "ffmpeg.h"

#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>
#include <vector>

InspectdCapture inspectd_ffmpeg_open(const char *uri, int open_ms, int read_ms) {
    cv::VideoCapture *vc = new cv::VideoCapture();
    std::vector<int> params = {cv::CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms, cv::CAP_PROP_READ_TIMEOUT_MSEC, read_ms};
    bool ok = false;
    try {
        ok = vc->open(uri, cv::CAP_FFMPEG, params) && vc->isOpened();
    } catch (...) {
        ok = false;
    }
    if (!ok) {
        delete vc;
        return nullptr;
    }
    return vc;
}

int inspectd_capture_read(InspectdCapture c, void *mat) {
    try {
        return static_cast<cv::VideoCapture *>(c)->read(*static_cast<cv::Mat *>(mat)) ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

double inspectd_capture_get(InspectdCapture c, int prop) {
    try {
        return static_cast<cv::VideoCapture *>(c)->get(prop);
    } catch (...) {
        return 0;
    }
}

void inspectd_capture_close(InspectdCapture c) { delete static_cast<cv::VideoCapture *>(c); }
