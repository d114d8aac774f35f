// OpenCV's own logging, which gocv v0.31.0 does not wrap.
#ifndef CONCIERGE_VISION_CVLOG_H
#define CONCIERGE_VISION_CVLOG_H
#ifdef __cplusplus
extern "C" {
#endif
void concierge_cv_quiet(void);
#ifdef __cplusplus
}
#endif
#endif
