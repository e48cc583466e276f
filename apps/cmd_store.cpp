// `vidfuse store verify STORE --manifest M`: is every video of the manifest in the store, and is
// every file intact (headers, and unless --quick its data: finite values, shapes, dtypes)? Loose
// or packed, with no flag. Exit 0 when complete, 1 otherwise.
// `vidfuse store stats STORE [--project N]`: what the store holds and costs per video, and the
// store size projected to N videos.
// `vidfuse store pack LOOSE PACKED [--shard-size 1GB] [--shard i/n]`: a loose store as tar shards
// (data/store_pack.h); atomic and resumable, parts packable by separate processes.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>

#include "command.h"
#include "vidfuse/core/error.h"
#include "vidfuse/data/extractor.h"
#include "vidfuse/data/feature_store.h"
#include "vidfuse/data/manifest.h"
#include "vidfuse/data/store_pack.h"
#include "vidfuse/data/store_reader.h"

namespace {

using namespace vidfuse;
using nlohmann::json;

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
  int u = 0;
  while (b >= 1000 && u < 5) {
    b /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f %s", b, units[u]);
  return buf;
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  // Appended piece by piece: `"," + std::to_string(...)` inlines into a basic_string::replace
  // that GCC 12 wrongly reports as a memcpy past any object size (-Wstringop-overflow).
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(s[i]);
  }
  return out + "]";
}

int run_verify(const std::string& store, const std::string& manifest_path,
               const std::string& videos, const std::string& streams, bool as_json, int show,
               bool quick) {
  const data::Manifest manifest = data::read_manifest(manifest_path, videos);
  std::vector<std::string> list;
  std::stringstream in(streams);
  for (std::string s; std::getline(in, s, ',');)
    if (!s.empty()) list.push_back(s);
  const data::VerifyReport r =
      data::verify_store(store, manifest, data::required_tensors(list), !quick);
  if (as_json) {
    json corrupt = json::array();
    for (const auto& [id, err] : r.corrupt_files) corrupt.push_back({{"id", id}, {"error", err}});
    auto pairs = [](const std::vector<std::pair<std::string, std::string>>& v, const char* b) {
      json out = json::array();
      for (const auto& [where, what] : v) out.push_back({{"where", where}, {b, what}});
      return out;
    };
    std::cout << json{{"store", store},
                      {"manifest", manifest.source},
                      {"expected", r.expected},
                      {"complete", r.complete},
                      {"missing", r.missing},
                      {"missing_with_recorded_failure", r.failed_recorded},
                      {"corrupt", r.corrupt},
                      {"extra", r.extra},
                      {"ok", r.ok()},
                      {"missing_ids", r.missing_ids},
                      {"corrupt_files", corrupt},
                      {"layout", r.packed ? "packed" : "loose"},
                      {"problems", r.problems},
                      {"nonfinite", pairs(r.nonfinite, "tensor")},
                      {"odd_shapes", pairs(r.odd_shapes, "what")},
                      {"stale_temps", r.stale_temps}}
                     .dump()
              << "\n";
  } else {
    std::printf("%s (%s) against %s\n", store.c_str(), r.packed ? "packed" : "loose",
                manifest.source.c_str());
    std::printf(
        "  %lld expected, %lld complete, %lld missing (%lld with a recorded failure), "
        "%lld corrupt, %lld files not in the manifest\n",
        static_cast<long long>(r.expected), static_cast<long long>(r.complete),
        static_cast<long long>(r.missing), static_cast<long long>(r.failed_recorded),
        static_cast<long long>(r.corrupt), static_cast<long long>(r.extra));
    for (size_t i = 0; i < r.missing_ids.size() && static_cast<int>(i) < show; ++i)
      std::printf("  missing: %s\n", r.missing_ids[i].c_str());
    for (size_t i = 0; i < r.corrupt_files.size() && static_cast<int>(i) < show; ++i)
      std::printf("  corrupt: %s\n", r.corrupt_files[i].second.c_str());
    for (size_t i = 0; i < r.problems.size() && static_cast<int>(i) < show; ++i)
      std::printf("  damaged: %s\n", r.problems[i].c_str());
    for (size_t i = 0; i < r.nonfinite.size() && static_cast<int>(i) < show; ++i)
      std::printf("  non-finite: %s: tensor '%s' holds NaN or infinite values\n",
                  r.nonfinite[i].first.c_str(), r.nonfinite[i].second.c_str());
    for (size_t i = 0; i < r.odd_shapes.size() && static_cast<int>(i) < show; ++i)
      std::printf("  odd: %s: %s\n", r.odd_shapes[i].first.c_str(), r.odd_shapes[i].second.c_str());
    if (!r.stale_temps.empty())
      std::printf("  %zu stale temp file(s) of killed writers (safe to delete), e.g. %s\n",
                  r.stale_temps.size(), r.stale_temps.front().c_str());
    std::printf("  %s\n", r.ok() ? "complete"
                          : !r.problems.empty()
                              ? "DAMAGED: rerun `vidfuse store pack` from the loose store"
                              : "INCOMPLETE: rerun `vidfuse extract` to resume");
  }
  return r.ok() ? 0 : 1;
}

// Every video's header: loose files, or the members of a packed store's shards (no data read).
std::vector<data::StoreFileInfo> scan_any_store(const std::string& store) {
  if (!data::is_packed_store(store)) return data::scan_store(store);
  const data::StoreReader reader(store);
  const data::PackedIndex& x = reader.index();
  std::vector<data::StoreFileInfo> out;
  std::vector<int> fds(x.shards.size(), -1);
  for (size_t i = 0; i < x.ids.size(); ++i) {
    const size_t s = size_t(x.shard[i]);
    if (fds[s] < 0) fds[s] = ::open(x.shard_path(s).c_str(), O_RDONLY | O_CLOEXEC);
    out.push_back(
        data::inspect_store_entry(reader.where(x.ids[i]), fds[s], x.offset[i], x.length[i]));
    out.back().id = x.ids[i];
  }
  for (int fd : fds)
    if (fd >= 0) ::close(fd);
  return out;
}

int run_stats(const std::string& store, bool as_json, int64_t project) {
  const auto files = scan_any_store(store);
  int64_t ok = 0, bad = 0;
  uint64_t bytes = 0;
  std::map<std::string, std::map<std::string, int64_t>> shapes;  // tensor → shape text → count
  std::map<std::string, uint64_t> tensor_bytes;
  std::map<std::string, std::string> dtypes;
  std::set<std::string> ids;
  for (const auto& f : files) {
    if (!f.ok) {
      ++bad;
      continue;
    }
    ++ok;
    ids.insert(f.id);
    bytes += f.bytes;
    for (const auto& [name, shape] : f.shapes) {
      ++shapes[name][shape_text(shape)];
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      const std::string dt = f.dtypes.at(name);
      dtypes[name] = dt;
      tensor_bytes[name] += n * c10::elementSize(weights::dtype_from_name(dt));
    }
  }
  std::set<std::string> failed;
  for (const auto& r : data::read_failures(store))
    if (!ids.count(r.id)) failed.insert(r.id);
  const double per_video = ok ? static_cast<double>(bytes) / ok : 0;
  if (as_json) {
    json t = json::object();
    for (const auto& [name, m] : shapes)
      t[name] = {{"shapes", m},
                 {"dtype", dtypes[name]},
                 {"bytes_per_video", ok ? static_cast<double>(tensor_bytes[name]) / ok : 0}};
    json j = {{"store", store},
              {"layout", data::is_packed_store(store) ? "packed" : "loose"},
              {"files", ok},
              {"corrupt", bad},
              {"failed", failed.size()},
              {"bytes", bytes},
              {"bytes_per_video", per_video},
              {"tensors", t}};
    if (project > 0) j["projected_bytes"] = per_video * project, j["projected_videos"] = project;
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::printf(
      "%s: %lld files (%s, %s per video), %lld corrupt, %lld failed videos without a file\n",
      store.c_str(), static_cast<long long>(ok), human_bytes(bytes).c_str(),
      human_bytes(per_video).c_str(), static_cast<long long>(bad),
      static_cast<long long>(failed.size()));
  for (const auto& [name, m] : shapes) {
    std::string s;
    for (const auto& [shape, count] : m)
      s += (s.empty() ? "" : ", ") + shape + (m.size() > 1 ? " x" + std::to_string(count) : "");
    std::printf("  %-18s %-5s %-28s %s per video\n", name.c_str(), dtypes[name].c_str(), s.c_str(),
                human_bytes(ok ? static_cast<double>(tensor_bytes[name]) / ok : 0).c_str());
  }
  if (project > 0)
    std::printf("  projected to %lld videos: %s\n", static_cast<long long>(project),
                human_bytes(per_video * project).c_str());
  if (!files.empty() && files.size() > 0) {
    const auto& meta = files.front().metadata;
    for (const char* k : {"semantic.model", "semantic.sampling", "semantic.pool", "motion.sampling",
                          "storage_dtype", "vidfuse.version"}) {
      auto it = meta.find(k);
      if (it != meta.end()) std::printf("  %-18s %s\n", k, it->second.c_str());
    }
  }
  return 0;
}

int run_pack(const std::string& loose, const std::string& packed, const std::string& size,
             const std::string& shard) {
  data::PackOptions o;
  o.shard_bytes = data::parse_byte_size(size, "--shard-size");
  if (!shard.empty()) std::tie(o.part, o.parts) = data::parse_shard(shard);
  o.log = &std::cerr;
  const data::PackSummary s = data::pack_store(loose, packed, o);
  std::printf(
      "%s -> %s: part %d/%d holds %lld of %lld videos: %lld packed now into %lld shard(s) (%s), "
      "%lld already packed, %lld damaged left out%s\n",
      loose.c_str(), packed.c_str(), o.part, o.parts, static_cast<long long>(s.part_videos),
      static_cast<long long>(s.loose_videos), static_cast<long long>(s.packed),
      static_cast<long long>(s.shards_written), human_bytes(double(s.bytes_written)).c_str(),
      static_cast<long long>(s.already_packed), static_cast<long long>(s.corrupt),
      s.index_written ? "; index rebuilt" : "");
  return s.corrupt > 0 ? 1 : 0;
}

std::function<int()> setup_store(CLI::App& sub) {
  sub.require_subcommand(1);
  struct Opts {
    std::string store, manifest, videos, streams, packed, shard_size = "1GB", shard;
    bool json = false, quick = false;
    int show = 20;
    int64_t project = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* verify = sub.add_subcommand("verify", "Check the store against a manifest");
  verify->add_option("STORE", o->store, "Feature store folder")->required();
  verify->add_option("--manifest", o->manifest, "The manifest the store was extracted from")
      ->required();
  verify->add_option("--videos", o->videos, "Videos folder (for manifests that need it)");
  verify->add_option("--streams", o->streams,
                     "Also require these streams' tensors (semantic,motion,flow)");
  verify->add_option("--show", o->show, "List at most this many missing/corrupt ids")
      ->capture_default_str();
  verify->add_flag("--json", o->json, "One JSON object on stdout");
  verify->add_flag("--quick", o->quick,
                   "Check the headers only (no data read: NaN/inf, shapes, dtypes unchecked)");
  CLI::App* stats = sub.add_subcommand("stats", "Summarise what the store holds");
  stats->add_option("STORE", o->store, "Feature store folder")->required();
  stats->add_option("--project", o->project, "Project the store size to this many videos");
  stats->add_flag("--json", o->json, "One JSON object on stdout");
  CLI::App* pack = sub.add_subcommand("pack", "Pack a loose store into tar shards");
  pack->add_option("LOOSE", o->store, "Loose feature store (vidfuse extract output)")->required();
  pack->add_option("PACKED", o->packed, "Packed store folder (created)")->required();
  pack->add_option("--shard-size", o->shard_size, "Shard size (e.g. 1GB, 256MB)")
      ->capture_default_str();
  pack->add_option("--shard", o->shard,
                   "Pack only part i of n (i/n): parts run by separate processes are disjoint");
  return [o, verify, pack] {
    if (verify->parsed())
      return run_verify(o->store, o->manifest, o->videos, o->streams, o->json, o->show, o->quick);
    if (pack->parsed()) return run_pack(o->store, o->packed, o->shard_size, o->shard);
    return run_stats(o->store, o->json, o->project);
  };
}

}  // namespace

VIDFUSE_COMMAND("store", "Verify, summarise or pack a feature store (verify, stats, pack)",
                setup_store);
