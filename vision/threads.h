// The one OpenCV call gocv v0.31.0 does not wrap: the size of the thread
// pool behind cv::parallel_for_, which OpenCV's DNN module and image
// functions use.
#ifndef CONCIERGE_VISION_THREADS_H
#define CONCIERGE_VISION_THREADS_H
#ifdef __cplusplus
extern "C" {
#endif
void concierge_cv_set_threads(int n);
int concierge_cv_threads(void);
#ifdef __cplusplus
}
#endif
#endif
