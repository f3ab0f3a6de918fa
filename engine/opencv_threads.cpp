// gocv v0.32 lacks cv::setNumThreads and lets importer exceptions escape (which
// aborts the process); these two shims fill that gap.
#include <cstdlib>
#include <cstring>
#include <exception>
#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>
#include "opencv_threads.h"

void inspectd_cv_set_num_threads(int n) { cv::setNumThreads(n); }

char* inspectd_cv_probe_onnx(const char* path) {
    try {
        cv::dnn::Net net = cv::dnn::readNetFromONNX(path);
        if (net.empty()) return strdup("the importer returned an empty network");
        return NULL;
    } catch (const std::exception& e) {
        return strdup(e.what());
    } catch (...) {
        return strdup("unknown OpenCV error");
    }
}
