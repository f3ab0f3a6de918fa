#ifdef __cplusplus
extern "C" {
#endif
void inspectd_cv_set_num_threads(int n);
// Returns NULL when OpenCV DNN can import the ONNX file, else a malloc'ed
// message the caller frees.
char* inspectd_cv_probe_onnx(const char* path);
#ifdef __cplusplus
}
#endif
