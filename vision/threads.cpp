#include <opencv2/core/utility.hpp>
#include "threads.h"

// Neither function throws: setNumThreads only resizes the pool.
void concierge_cv_set_threads(int n) { cv::setNumThreads(n); }
int concierge_cv_threads(void) { return cv::getNumThreads(); }
