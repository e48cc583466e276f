// Progress of a long extraction: a bar on a terminal, a log line every `interval` seconds
// otherwise, with rates and the time left.
#pragma once
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

#include "vidfuse/data/extractor.h"

namespace vidfuse::data {

class ExtractProgress {
 public:
  ExtractProgress(std::ostream& log, ProgressMode mode, double interval, int64_t total);
  // Prints when due (always when `final`).
  void update(int64_t done, int64_t failed, int64_t frames, bool final = false);

 private:
  using Clock = std::chrono::steady_clock;
  std::ostream& log_;
  double interval_;
  int64_t total_;
  Clock::time_point start_, last_;
  bool bar_ = false, off_ = false;
};

// "auto", "bar", "lines" or "off"; throws vidfuse::Error naming the value otherwise.
ProgressMode parse_progress_mode(const std::string& name);

// "1h05m", "3m07s"; "?" for a negative or unknown duration.
std::string format_duration(double seconds);

}  // namespace vidfuse::data
