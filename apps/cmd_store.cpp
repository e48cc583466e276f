// `vidfuse store verify STORE --manifest M`: is every video of the manifest in the store, and is
// every file intact (size + header check)? Exit 0 when complete, 1 otherwise.
// `vidfuse store stats STORE [--project N]`: what the store holds and costs per video, and the
// store size projected to N videos.
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "command.h"
#include "vidfuse/core/error.h"
#include "vidfuse/data/feature_store.h"
#include "vidfuse/data/manifest.h"

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
               const std::string& videos, const std::string& streams, bool as_json, int show) {
  const data::Manifest manifest = data::read_manifest(manifest_path, videos);
  std::vector<std::string> list;
  std::stringstream in(streams);
  for (std::string s; std::getline(in, s, ',');)
    if (!s.empty()) list.push_back(s);
  const data::VerifyReport r = data::verify_store(store, manifest, data::required_tensors(list));
  if (as_json) {
    json corrupt = json::array();
    for (const auto& [id, err] : r.corrupt_files) corrupt.push_back({{"id", id}, {"error", err}});
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
                      {"corrupt_files", corrupt}}
                     .dump()
              << "\n";
  } else {
    std::printf("%s against %s\n", store.c_str(), manifest.source.c_str());
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
    std::printf("  %s\n", r.ok() ? "complete" : "INCOMPLETE: rerun `vidfuse extract` to resume");
  }
  return r.ok() ? 0 : 1;
}

int run_stats(const std::string& store, bool as_json, int64_t project) {
  const auto files = data::scan_store(store);
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
    json j = {{"store", store}, {"files", ok},
              {"corrupt", bad}, {"failed", failed.size()},
              {"bytes", bytes}, {"bytes_per_video", per_video},
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

std::function<int()> setup_store(CLI::App& sub) {
  sub.require_subcommand(1);
  struct Opts {
    std::string store, manifest, videos, streams;
    bool json = false;
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
  CLI::App* stats = sub.add_subcommand("stats", "Summarise what the store holds");
  stats->add_option("STORE", o->store, "Feature store folder")->required();
  stats->add_option("--project", o->project, "Project the store size to this many videos");
  stats->add_flag("--json", o->json, "One JSON object on stdout");
  return [o, verify] {
    if (verify->parsed())
      return run_verify(o->store, o->manifest, o->videos, o->streams, o->json, o->show);
    return run_stats(o->store, o->json, o->project);
  };
}

}  // namespace

VIDFUSE_COMMAND("store", "Verify or summarise a feature store (verify, stats)", setup_store);
