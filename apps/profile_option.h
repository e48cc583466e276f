// `--profile FILE` on the model benchmarks: one extra forward recorded by LibTorch's profiler and
// written as a Chrome trace (open it in Perfetto or chrome://tracing), to see where a forward's
// time goes: which operators, how long each, on which thread.
#pragma once
#include <torch/csrc/autograd/profiler_legacy.h>

#include <filesystem>
#include <functional>
#include <string>

namespace vidfuse::cli {

// The trace path for one of several dtypes: trace.json -> trace-bf16.json.
inline std::string profile_path_for(const std::string& path, const std::string& dtype,
                                    bool several) {
  if (!several || path.empty()) return path;  // no --profile: no trace
  const std::filesystem::path p(path);
  return (p.parent_path() / (p.stem().string() + "-" + dtype + p.extension().string())).string();
}

// Runs `forward` once under the profiler when `path` is set; the trace is written when it ends.
inline void profile_once(const std::string& path, const std::function<void()>& forward) {
  if (path.empty()) return;
  {
    torch::autograd::profiler::RecordProfile record(path);
    forward();
  }
  std::fprintf(stderr, "profile: one forward's trace written to %s\n", path.c_str());
}

}  // namespace vidfuse::cli
