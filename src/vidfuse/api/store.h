// A feature store read back as samples: the videos of a manifest, their stored features, their
// labels. The same reader `vidfuse train` and `eval` use (both store layouts). Public API.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace vidfuse {

class FeatureStoreReader {
 public:
  // `manifest` chooses the videos and their labels; `semantic` / `motion` which streams get()
  // loads. Videos without a store file are left out (counted by missing()). Throws
  // vidfuse::Error naming the store or manifest when either cannot be read.
  FeatureStoreReader(const std::string& store, const std::string& manifest,
                     const std::string& videos_dir = "", bool semantic = true, bool motion = true);

  int64_t size() const;
  // "semantic" [Ts,h,w,Cs], "semantic_cls" [Ts,Cs], "motion" [Cm,Tm,Hm,Wm] (float32; the streams
  // asked for). Reads the file on every call: safe from any thread. Errors name the file.
  std::map<std::string, at::Tensor> get(int64_t index) const;
  int64_t label(int64_t index) const;  // -1 = unlabelled
  const std::string& id(int64_t index) const;
  std::vector<std::string> class_names() const;
  int64_t missing() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace vidfuse
