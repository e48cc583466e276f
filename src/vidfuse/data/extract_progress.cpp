#include "vidfuse/data/extract_progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iostream>

#include "vidfuse/core/error.h"

namespace vidfuse::data {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = static_cast<int64_t>(s);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", static_cast<long long>(t / 3600),
                  static_cast<long long>(t % 3600 / 60));
  else
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(t / 60),
                  static_cast<long long>(t % 60));
  return buf;
}

ExtractProgress::ExtractProgress(std::ostream& log, ProgressMode mode, double interval,
                                 int64_t total)
    : log_(log), interval_(interval), total_(total), start_(Clock::now()), last_(start_) {
  bar_ = mode == ProgressMode::Bar ||
         (mode == ProgressMode::Auto && &log == &std::cerr && ::isatty(STDERR_FILENO));
  off_ = mode == ProgressMode::Off;
}

void ExtractProgress::update(int64_t done, int64_t failed, int64_t frames, bool final) {
  if (off_) return;
  const auto now = Clock::now();
  const double since = std::chrono::duration<double>(now - last_).count();
  if (!final && since < (bar_ ? 0.2 : interval_)) return;
  last_ = now;
  const double el = std::chrono::duration<double>(now - start_).count();
  const int64_t n = done + failed;
  const double vps = el > 0 ? n / el : 0;
  const double eta = vps > 0 ? (total_ - n) / vps : NAN;
  char buf[256];
  if (bar_) {
    const int width = 30;
    const int filled = total_ > 0 ? static_cast<int>(width * n / total_) : width;
    std::string bar(filled, '#');
    bar.append(width - filled, '.');
    std::snprintf(buf, sizeof(buf),
                  "\r[%s] %lld/%lld videos (%lld failed)  %.2f videos/s  %.1f frames/s  ETA %s ",
                  bar.c_str(), static_cast<long long>(n), static_cast<long long>(total_),
                  static_cast<long long>(failed), vps, el > 0 ? frames / el : 0.0,
                  format_duration(eta).c_str());
    log_ << buf << (final ? "\n" : "") << std::flush;
  } else {
    std::snprintf(buf, sizeof(buf),
                  "extract: %lld/%lld videos (%lld failed), %.2f videos/s, %.1f frames/s, "
                  "elapsed %s, ETA %s",
                  static_cast<long long>(n), static_cast<long long>(total_),
                  static_cast<long long>(failed), vps, el > 0 ? frames / el : 0.0,
                  format_duration(el).c_str(), format_duration(eta).c_str());
    log_ << buf << "\n" << std::flush;
  }
}

ProgressMode parse_progress_mode(const std::string& name) {
  if (name == "auto") return ProgressMode::Auto;
  if (name == "bar") return ProgressMode::Bar;
  if (name == "lines") return ProgressMode::Lines;
  if (name == "off") return ProgressMode::Off;
  throw Error("progress '" + name + "': auto, bar, lines or off");
}

}  // namespace vidfuse::data
