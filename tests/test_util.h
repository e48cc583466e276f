// Shared helpers for the tests: fixture paths, error norms, scratch directories.
#pragma once
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "vidfuse/models/attention.h"

namespace vidfuse::test {

// A whole file's bytes ("" when it cannot be read: the test's own check then fails).
inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Writes `bytes` as the whole file, replacing what was there.
inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

inline std::string fixture(const std::string& rel) {
  return std::string(VIDFUSE_SHARED_DIR) + "/fixtures/" + rel;
}

// ||out - ref|| / ||ref||, computed in float64.
inline double rel_error(const torch::Tensor& out, const torch::Tensor& ref) {
  EXPECT_EQ(out.sizes(), ref.sizes());
  auto o = out.to(torch::kFloat64), r = ref.to(torch::kFloat64);
  return ((o - r).norm() / r.norm()).item<double>();
}

// Sets LibTorch's intra-op thread count for a test and restores it after. Some kernels only take
// their multi-threaded path (oneDNN's 1x1 convolution, per-head attention) with more than one.
class ThreadCountScope {
 public:
  explicit ThreadCountScope(int n) : saved_(at::get_num_threads()) { at::set_num_threads(n); }
  ~ThreadCountScope() { at::set_num_threads(saved_); }

 private:
  int saved_;
};

// Forces one attention kernel (models/attention.h) for a scope.
class AttentionKernelScope {
 public:
  explicit AttentionKernelScope(vidfuse::models::AttentionKernel k)
      : saved_(vidfuse::models::attention_kernel()) {
    vidfuse::models::set_attention_kernel(k);
  }
  ~AttentionKernelScope() { vidfuse::models::set_attention_kernel(saved_); }

 private:
  vidfuse::models::AttentionKernel saved_;
};

inline const char* kernel_name(vidfuse::models::AttentionKernel k) {
  return k == vidfuse::models::AttentionKernel::Sdpa ? "sdpa" : "per-head";
}
constexpr vidfuse::models::AttentionKernel kBothKernels[] = {
    vidfuse::models::AttentionKernel::Sdpa, vidfuse::models::AttentionKernel::PerHead};

// Sets an environment variable for a scope, restoring what was there.
class EnvScope {
 public:
  EnvScope(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) saved_ = old;
    ::setenv(name, value, 1);
  }
  ~EnvScope() {
    if (saved_)
      ::setenv(name_, saved_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> saved_;
};

// A fresh directory under the system temp dir, removed when the object dies.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "vidfuse-test-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Asserts that `statement` throws an exception whose message contains every one of `parts`.
#define EXPECT_THROW_WITH(statement, ...)                                   \
  do {                                                                      \
    try {                                                                   \
      statement;                                                            \
      ADD_FAILURE() << "expected an exception from: " #statement;           \
    } catch (const std::exception& e) {                                     \
      const std::string what = e.what();                                    \
      for (const std::string& part : std::vector<std::string>{__VA_ARGS__}) \
        EXPECT_NE(what.find(part), std::string::npos)                       \
            << "message lacks '" << part << "': " << what;                  \
    }                                                                       \
  } while (0)

}  // namespace vidfuse::test
