// A feature store read back as a training set: the videos of a manifest, their features from the
// store (loose `<store>/<id>.safetensors` or packed shards, told apart by data::StoreReader with no
// flag), their labels from the manifest.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "vidfuse/data/dataset.h"
#include "vidfuse/data/manifest.h"

namespace vidfuse::data {

class StoreReader;

class StoreDataset : public Dataset {
 public:
  // Keeps the manifest's videos the store holds (the others are counted in missing()). Opening
  // costs one directory listing (loose) or reading the index (packed), never a stat per video.
  // `semantic` / `motion` choose which streams get() loads. `stored_dtype`: get() hands the
  // features out in the dtype they are stored in (fp16/bf16; the trainer casts them on the compute
  // device) instead of float32. Throws vidfuse::Error when the store cannot be opened.
  StoreDataset(const std::string& store_dir, const Manifest& manifest, bool semantic = true,
               bool motion = true, bool stored_dtype = false);
  ~StoreDataset() override;

  int64_t size() const override { return static_cast<int64_t>(videos_.size()); }
  // semantic [T,h,w,C], semantic_cls [T,C], motion [1024,T',H',W'] (float32, or the stored dtype);
  // the label from the manifest. One read of the video's bytes per call (no shared state besides
  // the reader's open shards): safe from any thread. The first read of a video checks its
  // features are finite. Errors name the file (or shard and entry).
  Sample get(int64_t index) const override;
  int64_t label(int64_t index) const override { return entry(index).label; }
  std::vector<std::string> class_names() const override { return class_names_; }

  // get() straight into `out`'s tensors (a batch's slots, contiguous, in the stored dtype and the
  // store's shapes): the header is read, then each tensor's bytes land in its slot, with no
  // intermediate copy. Returns false, having written nothing, when the sample does not fit the
  // slots (get() then says why); throws what get() throws for an unreadable or non-finite file.
  bool read_into(int64_t index, Sample& out) const;
  bool stored_dtype() const { return stored_dtype_; }

  int64_t missing() const { return missing_; }
  const VideoEntry& entry(int64_t index) const { return videos_.at(static_cast<size_t>(index)); }
  const std::string& store_dir() const { return store_dir_; }
  // Where sample `index`'s bytes live (a file, or a shard and member), for messages.
  std::string where(int64_t index) const;
  std::string sample_name(int64_t index) const override { return where(index); }
  const StoreReader& reader() const { return *reader_; }

 private:
  std::string store_dir_;
  std::shared_ptr<const StoreReader> reader_;
  std::vector<VideoEntry> videos_;
  std::vector<std::string> class_names_;
  bool semantic_, motion_, stored_dtype_;
  int64_t missing_ = 0;
  std::unique_ptr<std::atomic<bool>[]> checked_;  // finite and shape checks done, per sample
  // The shapes of the first sample read, which every other must match (a file whose tensors
  // disagree with the rest is named when read, not deep inside a batch).
  mutable std::mutex reference_mutex_;
  mutable std::vector<std::vector<int64_t>> reference_shapes_;
  mutable std::string reference_where_;
};

}  // namespace vidfuse::data
