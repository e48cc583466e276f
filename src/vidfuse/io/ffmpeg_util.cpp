#include "vidfuse/io/ffmpeg_util.h"

extern "C" {
#include <libavutil/error.h>
#include <libavutil/log.h>
}

#include <cstdlib>
#include <mutex>

namespace vidfuse::io {

std::string av_error_text(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(err, buf, sizeof(buf));
  return buf;
}

void configure_ffmpeg_logging() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("VIDFUSE_FFMPEG_LOGLEVEL");
    av_log_set_level(env ? std::atoi(env) : AV_LOG_FATAL);
  });
}

}  // namespace vidfuse::io
