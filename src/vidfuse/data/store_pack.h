// The packed feature store: the loose store's per-video `.safetensors` files, unchanged, as the
// members of WebDataset-style tar shards (plain ustar, 512-byte aligned; Python's `tarfile` and
// `webdataset` read them), so an SSv2-sized store is a few hundred files instead of 220k.
//
//   <packed>/shard-<i>of<n>-<k>.tar    members "<id>.safetensors", in id order
//   <packed>/shard-<i>of<n>-<k>.json   that shard's index (its sidecar; published before the tar)
//   <packed>/shards.json               the store's index: every shard and id -> shard, offset,
//   length <packed>/extract.json              the loose store's recipe, copied
//
// shards.json is column-oriented JSON, quick to load for 220k entries from C++ or Python:
//   {"format": "vidfuse-packed/1", "recipe": "<fingerprint of extract.json>",
//    "shards": [name...], "shard_bytes": [size...], "shard_recipes": [fingerprint...],
//    "ids": [id...], "shard": [shard number...], "offset": [byte...], "length": [byte...]}
// offset/length locate the member's bytes (the safetensors file) inside its shard: one sample is
// one read. The sidecars hold the same columns for one shard; the tars are written atomically
// (temp + rename) after their sidecar, so a shard under its final name is always complete and
// described. The packed store is read by data::StoreReader (store_reader.h) with no flag.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace vidfuse::data {

inline constexpr const char* kPackedFormat = "vidfuse-packed/1";
inline constexpr const char* kPackedIndexName = "shards.json";

// `<dir>/shards.json` exists: the store is packed.
bool is_packed_store(const std::string& dir);

// A fingerprint of a store's extract.json (FNV-1a of its canonical JSON, hex); "none" when the
// store has none. Shards packed from stores of different recipes never share an index.
std::string recipe_fingerprint(const std::string& store_dir);

struct PackedIndex {
  std::string dir;
  std::string recipe;
  std::vector<std::string> shards;         // file names inside dir
  std::vector<uint64_t> shard_bytes;       // each shard's size when it was written
  std::vector<std::string> shard_recipes;  // each shard's recipe fingerprint
  std::vector<std::string> ids;            // one entry per video ...
  std::vector<int32_t> shard;              // ... its shard (index into shards)
  std::vector<uint64_t> offset, length;    // ... its bytes inside the shard
  std::string shard_path(size_t s) const;  // dir/shards[s]
};

// Reads `<dir>/shards.json`. Throws vidfuse::Error naming the file and the entry when it is
// malformed: columns of different lengths, a shard number out of range, an id listed twice (both
// shards named), shards of two recipes (the shard named).
PackedIndex read_packed_index(const std::string& dir);

// One member of a tar shard, as the tar's own headers describe it.
struct TarMember {
  std::string name;
  uint64_t offset = 0, length = 0;  // of the member's data
};
// Walks a shard's headers (one 512-byte read per member, no data read). Throws vidfuse::Error
// naming the shard and the member when a header is damaged or a member runs past the end.
std::vector<TarMember> read_tar_members(const std::string& path);

struct PackOptions {
  uint64_t shard_bytes = 1000ull * 1000 * 1000;  // a shard is closed before it grows past this
  int part = 0, parts = 1;      // this process packs the ids with in_shard(id, part, parts)
  std::ostream* log = nullptr;  // one line per shard; nullptr = quiet
  // Testing/operations hook: stop (as if killed) after this many shards were written; -1 = never.
  int64_t stop_after_shards = -1;
};

struct PackSummary {
  int64_t loose_videos = 0;    // files in the loose store
  int64_t part_videos = 0;     // of which this part owns
  int64_t already_packed = 0;  // found in this part's shards from an earlier run
  int64_t packed = 0;          // written in this run
  int64_t corrupt = 0;         // loose files that failed their check (left out, listed in log)
  int64_t shards_written = 0;
  uint64_t bytes_written = 0;
  bool stopped = false;        // stop_after_shards ended the run early
  bool index_written = false;  // shards.json was rebuilt
};

// Packs this part of the loose store `loose` into `packed` (created if needed), resuming from the
// shards an earlier run of the same part left, then rebuilds shards.json from every shard's
// sidecar. Parts run by separate processes write disjoint shards; each rebuilds the index when it
// ends (so the last to end writes the complete one; rerunning any part with nothing left to do
// rebuilds it too). Throws vidfuse::Error naming the file when the loose store cannot be read,
// `packed` holds shards of another recipe, or a shard cannot be written.
PackSummary pack_store(const std::string& loose, const std::string& packed,
                       const PackOptions& options = {});

// "1GB", "256MB", "64KiB", "4096" -> bytes (decimal units; KiB/MiB/GiB binary). Throws
// vidfuse::Error naming `what` (the option) when the text is not a size.
uint64_t parse_byte_size(const std::string& text, const std::string& what);

// Rebuilds `<packed>/shards.json` from the shards' sidecars (atomically). Throws vidfuse::Error
// naming the shard when a shard has no sidecar, two shards hold the same id, or shards come from
// two recipes.
PackedIndex write_packed_index(const std::string& packed);

}  // namespace vidfuse::data
