// The feature store: a folder with one safetensors file per video, `<store>/<id>.safetensors`,
// written atomically (temp + rename), so a file under its final name is always complete. Beside
// them: `index.json` (rebuilt atomically from the files at the end of every run; the files are the
// truth, the index a summary) and `failures.jsonl` (one JSON line per failed video, appended).
//
// Tensor names per video: store_schema.h (semantic.cls, semantic.patch, motion.mixed_5c, ...).
// Metadata (strings): format, vidfuse.version, id, source, streams, storage_dtype, and per stream
// <stream>.model, <stream>.weights, <stream>.weights_hash, <stream>.sampling, <stream>.transform
// (+ semantic.pool), warnings.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "vidfuse/data/manifest.h"
#include "vidfuse/weights/safetensors.h"

namespace vidfuse::data {

inline constexpr const char* kStoreFormat = "vidfuse-features/1";
inline constexpr const char* kVidfuseVersion = "0.1.0";

inline constexpr const char* kStoreSuffix = ".safetensors";
// Ids longer than this cannot name a store file: the name, a suffix and a temp tag must stay
// under the 255-byte file name limit.
inline constexpr size_t kMaxStoreIdBytes = 200;

// Why `id` cannot name a file in the store ("" when it can). An id is a store file name as it is
// (SSv2's numeric ids, Kinetics' <ytid>_<start>_<end>, the list readers' "class__video") as long
// as it is one plain file name: not empty, not "." or "..", no '/', no NUL or other control byte,
// at most kMaxStoreIdBytes bytes. Ids are never rewritten, so stores stay readable by id.
std::string store_id_problem(const std::string& id);

// "<store>/<id><suffix>" (suffix ".safetensors", "_rgb.npy", "_flow.npy"): the one place a file
// name is made from a manifest id. Throws vidfuse::Error naming the (quoted, shortened) id when
// store_id_problem finds one, so no id can name a file outside the store folder.
std::string store_file_path(const std::string& store_dir, const std::string& id,
                            const std::string& suffix = kStoreSuffix);

// "semantic,motion" -> {"semantic", "motion"} (empty items dropped): stream lists as the store's
// metadata and the command line write them.
std::vector<std::string> split_commas(const std::string& s);

// The tensors a complete file holds for the given streams ("semantic", "motion", "flow").
std::vector<std::string> required_tensors(const std::vector<std::string>& streams);

// What a quick check of one store file found.
struct StoreFileInfo {
  std::string id, path;
  bool ok = false;
  std::string error;  // why not ok (names the file)
  uint64_t bytes = 0;
  std::map<std::string, std::vector<int64_t>> shapes;
  std::map<std::string, std::string> dtypes;  // safetensors names ("F16", ...)
  weights::Metadata metadata;
};

// Size + header check, without reading the tensor data: the header parses and is valid, the data
// section is exactly as long as the tensors need (a truncated or padded file fails), the format
// tag is ours, and every tensor of the streams the file claims, plus `required`, is present.
StoreFileInfo inspect_store_file(const std::string& path,
                                 const std::vector<std::string>& required = {});

// The same check of a file's bytes at [offset, offset + size) of an open file (a packed shard's
// member); `where` names it in errors.
StoreFileInfo inspect_store_entry(const std::string& where, int fd, uint64_t offset, uint64_t size,
                                  const std::vector<std::string>& required = {});

// Atomic write of one video's features.
void write_store_file(const std::string& store_dir, const std::string& id,
                      const weights::TensorMap& tensors, const weights::Metadata& metadata);

// The ids of every `<id>.safetensors` of a loose store (sorted), from one directory listing:
// no file is opened or stat'ed. Temp files are not listed.
std::vector<std::string> list_loose_ids(const std::string& store_dir);

// Every temp file in the store folder and below (core/atomic_file's temp names, parse_temp_name),
// sorted: what `store verify` reports. Unlike find_stale_temps, which a rerun uses to remove only
// those of writers that are gone, this lists the live writers' too: verify describes the folder.
std::vector<std::string> find_temp_files(const std::string& store_dir);

// Every `*.safetensors` of the store, inspected (sorted by id). Temp files are ignored.
std::vector<StoreFileInfo> scan_store(const std::string& store_dir);

// Rewrites `<store>/index.json` atomically from a scan: {format, videos: {id: {bytes, tensors}}}.
// Returns the scan.
std::vector<StoreFileInfo> write_store_index(const std::string& store_dir);

struct FailureRecord {
  std::string id, path, error, time;
};
// Appends one line to `<store>/failures.jsonl` with a single O_APPEND write (whole lines even when
// several shards append at once), then fsyncs it. A failures.jsonl that is a symbolic link or not
// a regular file is refused, never written through. Throws vidfuse::Error when the store cannot
// be written.
void append_failure(const std::string& store_dir, const FailureRecord& record);
// Every record (the latest per id last); malformed lines are skipped.
std::vector<FailureRecord> read_failures(const std::string& store_dir);

// The store (loose or packed, told apart with no flag) against a manifest.
struct VerifyReport {
  bool packed = false;
  int64_t expected = 0, complete = 0, missing = 0, corrupt = 0;
  int64_t failed_recorded = 0;  // missing videos that failures.jsonl explains
  int64_t extra = 0;            // files (entries) for ids the manifest does not list
  std::vector<std::string> missing_ids;
  std::vector<std::pair<std::string, std::string>> corrupt_files;  // id, error
  // Store-level damage, each naming the shard (and entry): a missing or truncated shard, an index
  // that disagrees with its shard, ids listed twice, shards of two recipes, a shard the index
  // does not list.
  std::vector<std::string> problems;
  // Full check only (the data are read): NaN/inf values, tensors whose shape differs from the
  // store's (the most common one per tensor) or whose dtype differs from the recipe's.
  std::vector<std::pair<std::string, std::string>> nonfinite;   // where, tensor
  std::vector<std::pair<std::string, std::string>> odd_shapes;  // where, what differs
  // Temp files killed writers left (reported, not counted against the store).
  std::vector<std::string> stale_temps;
  bool ok() const {
    return missing == 0 && corrupt == 0 && problems.empty() && nonfinite.empty() &&
           odd_shapes.empty();
  }
};
// `full`: read every video's data (finite values, shapes, dtypes), not only the headers.
VerifyReport verify_store(const std::string& store_dir, const Manifest& manifest,
                          const std::vector<std::string>& required = {}, bool full = true);

// A 64-bit FNV-1a hash: video-to-shard assignment and weight fingerprints (stable across machines
// and builds, unlike std::hash).
uint64_t fnv1a64(const void* data, size_t size, uint64_t seed = 14695981039346656037ull);
inline uint64_t fnv1a64(const std::string& s) { return fnv1a64(s.data(), s.size()); }

// Writes a NumPy .npy file (float32 / float16 / float64 / int64), atomically: the
// v-iashin/video_features output layout (`<id>_rgb.npy`, `<id>_flow.npy`).
void write_npy(const std::string& path, const torch::Tensor& tensor);

}  // namespace vidfuse::data
