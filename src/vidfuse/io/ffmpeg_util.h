// What the FFmpeg-based reader and writer share: FFmpeg's error text, and its log level.
#pragma once
#include <string>

namespace vidfuse::io {

// The text of an FFmpeg (AVERROR) error code.
std::string av_error_text(int err);

// FFmpeg prints every concealed macroblock error and every encoder's statistics to stderr; the
// reader and writer turn what matters into errors and warnings naming the file instead. Keeps
// FFmpeg quiet (AV_LOG_FATAL) unless VIDFUSE_FFMPEG_LOGLEVEL (an av_log level number, e.g. 48 for
// debug) brings its own messages back. Idempotent and thread-safe.
void configure_ffmpeg_logging();

}  // namespace vidfuse::io
