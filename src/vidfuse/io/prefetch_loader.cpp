#include "vidfuse/io/prefetch_loader.h"

#include "vidfuse/core/error.h"

namespace vidfuse::io {

double LoaderStats::idle_fraction() const {
  const double steady = elapsed_seconds - first_wait_seconds;
  if (steady <= 0) return 0.0;
  return std::max(0.0, wait_seconds - first_wait_seconds) / steady;
}

void check_loader_options(int64_t num_items, const LoaderOptions& options) {
  if (num_items < 0) throw Error("PrefetchLoader: negative item count");
  if (options.workers < 1) throw Error("PrefetchLoader: needs at least one worker");
  if (options.capacity < 1) throw Error("PrefetchLoader: capacity must be at least 1");
}

std::string current_exception_message() {
  try {
    throw;
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown error";
  }
}

PrefetchLoader<Clip>::Task clip_task(std::vector<std::string> paths, SamplingSpec spec,
                                     TransformPreset preset, DecodeOptions decode) {
  return [paths = std::move(paths), spec, preset, decode](int64_t i) {
    const std::string& path = paths.at(static_cast<size_t>(i));
    try {
      Clip clip = load_clip(path, spec, decode);
      clip.frames = apply_preset(preset, clip.frames);
      return clip;
    } catch (const Error& e) {
      const std::string m = e.what();
      if (m.rfind(path, 0) == 0) throw;
      throw Error(path + ": " + m);  // transform errors do not know the file
    }
  };
}

}  // namespace vidfuse::io
