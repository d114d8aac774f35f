#include <opencv2/core/utils/logger.hpp>
#include "cvlog.h"

// setLogLevel only stores the level; it does not throw.
void concierge_cv_quiet(void) {
	cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_FATAL);
}
