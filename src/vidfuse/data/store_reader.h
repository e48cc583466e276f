// Reading a feature store in either layout, with no flag: loose (`<store>/<id>.safetensors`, see
// feature_store.h) or packed (tar shards + shards.json, see store_pack.h). Opening costs one
// directory listing (loose) or reading the index and one stat per shard (packed), never one per
// video: a file that went missing is reported when it is read, or by `vidfuse store verify`.
#pragma once
#include <torch/torch.h>

#include <atomic>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "vidfuse/data/store_pack.h"
#include "vidfuse/weights/safetensors.h"

namespace vidfuse::data {

class StoreReader {
 public:
  // Throws vidfuse::Error naming the folder, the index or the shard when the store cannot be
  // opened: no such folder; a packed index that is malformed, lists an id twice or mixes recipes;
  // a shard that is missing or shorter than its entries need (the entry named); a shard in the
  // folder that the index does not list (a stale index).
  explicit StoreReader(const std::string& dir);
  ~StoreReader();
  StoreReader(const StoreReader&) = delete;
  StoreReader& operator=(const StoreReader&) = delete;

  const std::string& dir() const { return dir_; }
  bool packed() const { return packed_; }
  // Every video the store holds (loose: sorted by id; packed: in index order).
  const std::vector<std::string>& ids() const { return ids_; }
  bool contains(const std::string& id) const { return pos_.count(id) > 0; }
  // Where the video's bytes live, for messages: "<store>/<id>.safetensors" or
  // "<store>/<shard>.tar[<id>.safetensors]".
  std::string where(const std::string& id) const;
  // One video's bytes, open for reading in parts (its header, then each tensor straight into its
  // destination). Safe from any thread; errors name the file or the shard and the entry.
  class Span {
   public:
    Span(Span&& other) noexcept;
    Span(const Span&) = delete;
    Span& operator=(const Span&) = delete;
    Span& operator=(Span&&) = delete;
    ~Span();
    uint64_t size() const { return length_; }
    const std::string& where() const { return where_; }
    // Reads bytes [at, at + n) of the video's file into dst.
    void read(void* dst, uint64_t n, uint64_t at) const;

   private:
    friend class StoreReader;
    Span() = default;
    int fd_ = -1;
    bool owned_ = false;  // a loose file's descriptor (a shard's stays open in the reader)
    uint64_t offset_ = 0, length_ = 0;
    std::string where_;
  };
  Span span(const std::string& id) const;
  // The video's whole safetensors file in one read, as a 1-D uint8 tensor. Safe from any thread.
  // Throws vidfuse::Error naming the file or the shard and the entry (unknown id, missing file,
  // short read).
  torch::Tensor read(const std::string& id) const;
  // read() parsed: the tensors alias the bytes. When the file records an id (every file extract
  // writes does), it must be `id`; a packed entry whose bytes are another video's means the index
  // disagrees with its shard, and says so.
  std::unique_ptr<weights::SafetensorsFile> open(const std::string& id) const;
  // open()'s check that a parsed file is the features of `id` (throws naming `file.path()`).
  void check_id(const weights::SafetensorsFile& file, const std::string& id) const;

  // Packed only: the index (empty for a loose store).
  const PackedIndex& index() const { return index_; }

 private:
  int shard_fd(int32_t shard) const;

  std::string dir_;
  bool packed_ = false;
  std::vector<std::string> ids_;
  std::unordered_map<std::string, size_t> pos_;  // id -> position in ids_ (and the index)
  PackedIndex index_;
  // One descriptor per shard, opened on first use (pread is safe from any thread).
  std::unique_ptr<std::atomic<int>[]> fds_;
};

// The fp16/bf16/fp32/fp64 values of `t` are all finite (a bit test, no conversion).
bool all_finite(const torch::Tensor& t);

}  // namespace vidfuse::data
