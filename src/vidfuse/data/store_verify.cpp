// `verify_store` (declared in feature_store.h): a loose or packed store against a manifest.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <unordered_map>

#include "vidfuse/core/error.h"
#include "vidfuse/core/mapped_file.h"
#include "vidfuse/core/shape_text.h"
#include "vidfuse/data/extract_recipe.h"
#include "vidfuse/data/feature_store.h"
#include "vidfuse/data/store_pack.h"
#include "vidfuse/data/store_reader.h"
#include "vidfuse/data/store_schema.h"

namespace vidfuse::data {

namespace fs = std::filesystem;

namespace {

using Shapes = std::map<std::string, std::vector<int64_t>>;

struct Checker {
  VerifyReport& r;
  std::vector<std::string> required;
  std::string dtype;  // the recipe's storage dtype ("F16", ...); "" when the store has no recipe
  bool full;
  std::vector<std::pair<std::string, Shapes>> shapes;  // where, shapes: for the odd-shape pass

  // One video's bytes (the whole safetensors file). Returns false (and records why) when corrupt.
  bool check(const std::string& id, const std::string& where, torch::Tensor bytes) {
    try {
      weights::SafetensorsFile f(where, bytes);
      const auto* p = bytes.data_ptr<uint8_t>();
      uint64_t header = 0;
      for (int i = 7; i >= 0; --i) header = (header << 8) | p[i];
      const uint64_t data = static_cast<uint64_t>(bytes.numel()) - 8 - header;
      uint64_t end = 0;
      for (const auto& k : f.keys()) end = std::max<uint64_t>(end, f.info(k).end);
      if (end != data)
        fail_file(where, "data section is " + std::to_string(data) +
                             " bytes but the tensors need " + std::to_string(end) +
                             " (truncated or damaged file)");
      const auto& meta = f.metadata();
      auto fmt = meta.find("format");
      if (fmt == meta.end() || fmt->second != kStoreFormat)
        fail_file(where, std::string("not a vidfuse feature file (metadata format is not '") +
                             kStoreFormat + "')");
      auto mid = meta.find("id");
      if (mid != meta.end() && mid->second != id)
        fail_file(where, "holds the features of '" + mid->second + "', not '" + id + "'" +
                             (r.packed ? " (the index disagrees with its shard)" : ""));
      std::vector<std::string> need = required;
      auto streams = meta.find("streams");
      if (streams != meta.end())
        for (const auto& t : required_tensors(split_commas(streams->second))) need.push_back(t);
      for (const auto& n : need)
        if (!f.contains(n)) fail_file(where, "no tensor '" + n + "'");
      if (full) {
        Shapes s;
        for (const auto& k : f.keys()) {
          const torch::Tensor t = f.get(k, /*zero_copy=*/true);
          s[k] = t.sizes().vec();
          if (!all_finite(t)) r.nonfinite.emplace_back(where, k);
          if (!dtype.empty() && t.is_floating_point() && !is_times_tensor(k) &&
              weights::dtype_name(t.scalar_type()) != dtype)
            r.odd_shapes.emplace_back(where, "tensor '" + k + "' is " +
                                                 weights::dtype_name(t.scalar_type()) +
                                                 " but the recipe stores " + dtype);
        }
        shapes.emplace_back(where, std::move(s));
      }
      return true;
    } catch (const std::exception& e) {
      ++r.corrupt;
      r.corrupt_files.emplace_back(id, e.what());
      return false;
    }
  }

  // Per tensor, the files whose shape is not the most common one. (The model width is not in the
  // recipe, so the store's own majority is the reference.) Tensors whose shape varies by design
  // with the video (times, an uncropped motion clip) are not flagged when no shape holds a
  // majority.
  void odd_shapes() {
    std::map<std::string, std::map<std::vector<int64_t>, int64_t>> counts;
    for (const auto& [where, s] : shapes)
      for (const auto& [k, shape] : s) ++counts[k][shape];
    std::map<std::string, std::vector<int64_t>> mode;
    for (const auto& [k, m] : counts) {
      int64_t best = 0, total = 0;
      for (const auto& [shape, n] : m) {
        total += n;
        if (n > best) best = n, mode[k] = shape;
      }
      if (best * 2 <= total) mode.erase(k);
    }
    for (const auto& [where, s] : shapes)
      for (const auto& [k, shape] : s) {
        auto it = mode.find(k);
        if (it != mode.end() && shape != it->second)
          r.odd_shapes.emplace_back(where, "tensor '" + k + "' has shape " + shape_text(shape) +
                                               " but the store's other files have " +
                                               shape_text(it->second));
      }
  }
};

std::string recipe_dtype(const std::string& dir) {
  if (!fs::exists(extract_recipe_path(dir))) return "";
  return ExtractRecipe::storage_dtype_name(read_extract_recipe(dir).storage_dtype);
}

void verify_packed(const std::string& dir, const Manifest& manifest, Checker& c,
                   const std::set<std::string>& failed_ids) {
  VerifyReport& r = c.r;
  PackedIndex x;
  try {
    x = read_packed_index(dir);
  } catch (const std::exception& e) {
    r.problems.push_back(e.what());
    r.missing = r.expected = static_cast<int64_t>(manifest.videos.size());
    for (const auto& v : manifest.videos) r.missing_ids.push_back(v.id);
    return;
  }
  // Every shard: present, as long as written, and its tar headers agree with the index.
  std::unordered_map<std::string, size_t> pos;
  for (size_t i = 0; i < x.ids.size(); ++i) pos.emplace(x.ids[i], i);
  std::vector<bool> shard_ok(x.shards.size(), true);
  std::vector<std::vector<size_t>> entries(x.shards.size());
  for (size_t i = 0; i < x.ids.size(); ++i) entries[size_t(x.shard[i])].push_back(i);
  for (size_t s = 0; s < x.shards.size(); ++s) {
    const std::string path = x.shard_path(s);
    const std::string first =
        entries[s].empty() ? "" : " (entries '" + x.ids[entries[s].front()] + "' ...)";
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      r.problems.push_back(path + ": shard is missing; its " + std::to_string(entries[s].size()) +
                           " videos" + first + " cannot be read");
      shard_ok[s] = false;
      continue;
    }
    if (static_cast<uint64_t>(st.st_size) != x.shard_bytes[s])
      r.problems.push_back(path + ": shard is " + std::to_string(st.st_size) +
                           " bytes but the index says " + std::to_string(x.shard_bytes[s]) +
                           " (truncated or changed after packing)");
    std::vector<TarMember> members;
    try {
      members = read_tar_members(path);
    } catch (const std::exception& e) {
      r.problems.push_back(e.what());
      shard_ok[s] = false;
      // Entries past the damage are reported one by one when read below.
    }
    std::set<std::string> in_tar;
    for (const auto& m : members) {
      const std::string suffix = ".safetensors";
      const std::string id =
          m.name.size() > suffix.size() ? m.name.substr(0, m.name.size() - suffix.size()) : m.name;
      in_tar.insert(id);
      auto it = pos.find(id);
      if (it == pos.end() || size_t(x.shard[it->second]) != s) {
        r.problems.push_back(path + ": member '" + m.name +
                             "' is not in the index under this shard");
        continue;
      }
      if (x.offset[it->second] != m.offset || x.length[it->second] != m.length)
        r.problems.push_back(path + ": entry '" + id + "': the index says bytes [" +
                             std::to_string(x.offset[it->second]) + ", +" +
                             std::to_string(x.length[it->second]) + ") but the tar holds it at [" +
                             std::to_string(m.offset) + ", +" + std::to_string(m.length) +
                             ") (the index disagrees with its shard)");
    }
    if (shard_ok[s])
      for (size_t i : entries[s])
        if (!in_tar.count(x.ids[i]))
          r.problems.push_back(path + ": entry '" + x.ids[i] +
                               "' of the index is not a member of the shard");
  }
  std::set<std::string> listed_shards(x.shards.begin(), x.shards.end());
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tar") == 0 &&
        !listed_shards.count(name))
      r.problems.push_back(it->path().string() + ": shard is not in " + kPackedIndexName +
                           " (a stale index: rerun `vidfuse store pack`)");
  }

  // Every video of the manifest: one read of its bytes, checked.
  std::vector<int> fds(x.shards.size(), -1);
  std::set<std::string> listed;
  for (const auto& v : manifest.videos) {
    listed.insert(v.id);
    ++r.expected;
    auto it = pos.find(v.id);
    if (it == pos.end()) {
      ++r.missing;
      r.missing_ids.push_back(v.id);
      if (failed_ids.count(v.id)) ++r.failed_recorded;
      continue;
    }
    const size_t i = it->second, s = size_t(x.shard[i]);
    const std::string where = x.shard_path(s) + "[" + v.id + ".safetensors]";
    if (fds[s] < 0) fds[s] = ::open(x.shard_path(s).c_str(), O_RDONLY | O_CLOEXEC);
    if (fds[s] < 0) {
      ++r.corrupt;
      r.corrupt_files.emplace_back(v.id, where + ": shard cannot be opened");
      continue;
    }
    torch::Tensor bytes = torch::empty({static_cast<int64_t>(x.length[i])}, torch::kUInt8);
    const int64_t n = pread_full(fds[s], bytes.data_ptr<uint8_t>(), x.length[i], x.offset[i]);
    if (n != static_cast<int64_t>(x.length[i])) {
      ++r.corrupt;
      r.corrupt_files.emplace_back(
          v.id, where + (n < 0 ? ": read failed: " + std::string(std::strerror(errno))
                               : ": the shard ends before the entry does (truncated shard)"));
      continue;
    }
    if (c.check(v.id, where, bytes)) ++r.complete;
  }
  for (int fd : fds)
    if (fd >= 0) ::close(fd);
  for (const auto& id : x.ids)
    if (!listed.count(id)) ++r.extra;
}

}  // namespace

VerifyReport verify_store(const std::string& store_dir, const Manifest& manifest,
                          const std::vector<std::string>& required, bool full) {
  if (!fs::is_directory(store_dir)) fail_file(store_dir, "feature store folder does not exist");
  VerifyReport r;
  r.packed = is_packed_store(store_dir);
  r.stale_temps = find_temp_files(store_dir);
  Checker c{r, required, recipe_dtype(store_dir), full, {}};
  std::set<std::string> failed_ids;
  for (const auto& f : read_failures(store_dir)) failed_ids.insert(f.id);
  if (r.packed) {
    verify_packed(store_dir, manifest, c, failed_ids);
  } else {
    const std::vector<std::string> ids = list_loose_ids(store_dir);
    const std::set<std::string> present(ids.begin(), ids.end());
    std::set<std::string> listed;
    StoreReader reader(store_dir);
    for (const auto& v : manifest.videos) {
      listed.insert(v.id);
      ++r.expected;
      if (!present.count(v.id)) {
        ++r.missing;
        r.missing_ids.push_back(v.id);
        if (failed_ids.count(v.id)) ++r.failed_recorded;
        continue;
      }
      const std::string path = store_file_path(store_dir, v.id);
      if (!full) {  // the headers only
        const StoreFileInfo info = inspect_store_file(path, required);
        if (info.ok) {
          ++r.complete;
        } else {
          ++r.corrupt;
          r.corrupt_files.emplace_back(v.id, info.error);
        }
        continue;
      }
      torch::Tensor bytes;
      try {
        bytes = reader.read(v.id);
      } catch (const std::exception& e) {
        ++r.corrupt;
        r.corrupt_files.emplace_back(v.id, e.what());
        continue;
      }
      if (c.check(v.id, path, bytes)) ++r.complete;
    }
    for (const auto& id : ids)
      if (!listed.count(id)) ++r.extra;
  }
  if (full) c.odd_shapes();
  return r;
}

}  // namespace vidfuse::data
