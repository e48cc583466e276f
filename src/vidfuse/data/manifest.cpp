#include "vidfuse/data/manifest.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <unordered_map>

#include "vidfuse/core/error.h"
#include "vidfuse/core/json_file.h"
#include "vidfuse/core/quote.h"

namespace vidfuse::data {

namespace fs = std::filesystem;
using nlohmann::json;

bool is_video_extension(const std::string& ext_in) {
  std::string ext = ext_in;
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  static const std::set<std::string> kExt = {".mp4", ".webm", ".mkv",  ".avi", ".mov", ".m4v",
                                             ".mpg", ".mpeg", ".flv",  ".wmv", ".3gp", ".ts",
                                             ".ogv", ".h264", ".hevc", ".gif"};
  return kExt.count(ext) > 0;
}

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  size_t pos = 0;
  try {
    out = std::stoll(s, &pos);
  } catch (...) {
    return false;
  }
  return pos == s.size();
}

// One CSV record, RFC 4180 quoting ("a, b" and doubled quotes inside quotes). Kinetics CSVs quote
// labels that contain commas ("passing American football (in game)" is fine, but some have commas).
std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> fields;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.push_back(trim(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  fields.push_back(trim(cur));
  return fields;
}

std::vector<std::string> split_ws(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  std::string tok;
  while (in >> tok) out.push_back(tok);
  return out;
}

// Where ids and relative paths are looked up: the folders to try, in order, and (built on first
// use) a map from file stem to file for ids that name a video without its extension.
class VideoLocator {
 public:
  VideoLocator(const std::string& manifest_path, const std::string& videos_dir, int max_depth)
      : max_depth_(max_depth) {
    if (!videos_dir.empty()) {
      if (!fs::is_directory(videos_dir))
        fail_file(videos_dir, "videos folder does not exist or is not a directory");
      dirs_.push_back(videos_dir);
    } else {
      const fs::path base = fs::path(manifest_path).parent_path();
      dirs_.push_back(base.empty() ? fs::path(".") : base);
      if (fs::is_directory(base / "videos")) dirs_.push_back(base / "videos");
    }
  }

  // A video named by id (SSv2, Kinetics): <dir>/<id>.<any video extension>. When no file exists
  // the path is a guess with `default_ext`, and extraction reports the missing file.
  std::string by_stem(const std::string& stem, const std::string& default_ext) {
    if (!indexed_) build_index();
    auto it = stems_.find(stem);
    if (it != stems_.end()) return it->second;
    return (fs::path(dirs_.back()) / (stem + default_ext)).string();
  }

  // A path written in a list: absolute as is, relative against the first folder that has it.
  std::string by_path(const std::string& p) const {
    if (fs::path(p).is_absolute()) return p;
    for (const auto& d : dirs_) {
      const fs::path candidate = d / p;
      std::error_code ec;  // a link loop or an overlong name: not found here (extraction says why)
      if (fs::exists(candidate, ec)) return candidate.string();
    }
    return (dirs_.front() / p).string();
  }

 private:
  void build_index() {
    indexed_ = true;
    // Later folders first, so the earlier (preferred) folder's file wins a stem both hold.
    for (auto d = dirs_.rbegin(); d != dirs_.rend(); ++d) {
      std::error_code ec;
      fs::recursive_directory_iterator it(*d, fs::directory_options::skip_permission_denied, ec);
      for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it.depth() >= max_depth_) it.disable_recursion_pending();
        if (!it->is_regular_file(ec)) continue;
        const fs::path& p = it->path();
        if (is_video_extension(p.extension().string())) stems_[p.stem().string()] = p.string();
      }
    }
  }

  std::vector<fs::path> dirs_;
  int max_depth_;
  bool indexed_ = false;
  std::unordered_map<std::string, std::string> stems_;
};

// Store file names come from ids, so an id must be a plain file name.
std::string id_from_path(const std::string& p) {
  fs::path rel = fs::path(p);
  if (rel.is_absolute()) return rel.stem().string();
  std::string id = (rel.parent_path() / rel.stem()).generic_string();
  while (id.rfind("./", 0) == 0) id = id.substr(2);
  std::string out;
  for (char c : id) {
    if (c == '/' || c == '\\')
      out += "__";
    else
      out += c;
  }
  return out;
}

void check_unique_ids(const Manifest& m, const std::string& path,
                      const std::vector<std::string>& where) {
  std::unordered_map<std::string, size_t> seen;
  for (size_t i = 0; i < m.videos.size(); ++i) {
    const std::string& id = m.videos[i].id;
    if (id.empty()) fail_file(path, where[i] + ": empty video id");
    auto [it, fresh] = seen.emplace(id, i);
    if (!fresh)
      fail_file(path, where[i] + ": duplicate video id " + quoted_short(id) + " (first at " +
                          where[it->second] + ")");
  }
}

// String labels → indices of the sorted unique names (the Kinetics convention).
void assign_string_labels(Manifest& m, const std::vector<std::string>& names) {
  std::set<std::string> unique;
  for (const auto& n : names)
    if (!n.empty()) unique.insert(n);
  m.class_names.assign(unique.begin(), unique.end());
  std::map<std::string, int64_t> index;
  for (size_t i = 0; i < m.class_names.size(); ++i)
    index[m.class_names[i]] = static_cast<int64_t>(i);
  for (size_t i = 0; i < names.size(); ++i)
    m.videos[i].label = names[i].empty() ? -1 : index.at(names[i]);
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail_file(path, "cannot open manifest");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  if (in.bad()) fail_file(path, "read error");
  return lines;
}

// ---- SSv2 -------------------------------------------------------------------------------------

// labels.json: {"Approaching something with your camera": "0", ...} → names by index.
std::map<std::string, int64_t> read_ssv2_labels(const std::string& path,
                                                std::vector<std::string>& names) {
  const json j = read_json_file(path, "labels file");
  if (!j.is_object()) fail_file(path, "expected an object {template: index}");
  std::map<std::string, int64_t> map;
  for (auto& [k, v] : j.items()) {
    int64_t idx = -1;
    if (v.is_number_integer())
      idx = v.get<int64_t>();
    else if (!v.is_string() || !parse_int(v.get<std::string>(), idx))
      fail_file(path, "class " + quoted_short(k) + ": index is not an integer");
    if (idx < 0 || idx >= static_cast<int64_t>(j.size()))
      fail_file(path, "class " + quoted_short(k) + ": index " + std::to_string(idx) +
                          " outside [0, " + std::to_string(j.size()) + ")");
    map[k] = idx;
  }
  names.assign(map.size(), "");
  for (const auto& [k, idx] : map) {
    if (!names[idx].empty())
      fail_file(path, "classes " + quoted_short(names[idx]) + " and " + quoted_short(k) +
                          " share index " + std::to_string(idx));
    names[idx] = k;
  }
  return map;
}

Manifest read_ssv2(const std::string& path, const std::string& videos_dir) {
  const json j = read_json_file(path, "manifest");
  if (!j.is_array())
    fail_file(path, "expected a JSON array of {\"id\", \"template\", ...} (the SSv2 layout)");
  Manifest m;
  m.source = "ssv2 json: " + path;
  const fs::path labels_path = fs::path(path).parent_path() / "labels.json";
  std::map<std::string, int64_t> labels;
  const bool have_labels = fs::exists(labels_path);
  if (have_labels) labels = read_ssv2_labels(labels_path.string(), m.class_names);
  VideoLocator locate(path, videos_dir, 1);
  std::vector<std::string> where;
  for (size_t i = 0; i < j.size(); ++i) {
    const json& e = j[i];
    std::string at = "entry " + std::to_string(i + 1);
    if (!e.is_object()) fail_file(path, at + ": not an object");
    if (!e.contains("id")) fail_file(path, at + ": missing \"id\"");
    std::string id;
    if (e["id"].is_string())
      id = e["id"].get<std::string>();
    else if (e["id"].is_number_integer())
      id = std::to_string(e["id"].get<int64_t>());
    else
      fail_file(path, at + ": \"id\" is neither a string nor an integer");
    at += " (id " + quoted_short(id) + ")";
    VideoEntry v;
    v.id = id;
    v.path = locate.by_stem(id, ".webm");
    if (e.contains("template")) {
      if (!e["template"].is_string()) fail_file(path, at + ": \"template\" is not a string");
      if (!have_labels)
        fail_file(path, at + ": has a template but there is no labels.json beside the manifest (" +
                            labels_path.string() + ")");
      const std::string key = ssv2_label_of_template(e["template"].get<std::string>());
      auto it = labels.find(key);
      if (it == labels.end())
        fail_file(path, at + ": template " + quoted_short(key) + " is not a class in " +
                            labels_path.string());
      v.label = it->second;
    }
    m.videos.push_back(std::move(v));
    where.push_back(at);
  }
  check_unique_ids(m, path, where);
  return m;
}

// ---- CSV / lists --------------------------------------------------------------------------------

int find_column(const std::vector<std::string>& header, std::initializer_list<const char*> names) {
  for (size_t i = 0; i < header.size(); ++i)
    for (const char* n : names)
      if (lower(header[i]) == n) return static_cast<int>(i);
  return -1;
}

// Kinetics: label,youtube_id,time_start,time_end,split[,is_cc]; files
// <youtube_id>_<start:06d>_<end:06d>.mp4, anywhere up to two folders deep (class folders).
Manifest read_kinetics(const std::string& path, const std::vector<std::string>& lines, size_t first,
                       const std::string& videos_dir) {
  const auto header = split_csv(lines[first]);
  const int c_label = find_column(header, {"label"});
  const int c_id = find_column(header, {"youtube_id"});
  const int c_start = find_column(header, {"time_start"});
  const int c_end = find_column(header, {"time_end"});
  if (c_start < 0 || c_end < 0)
    fail_file(path, "line " + std::to_string(first + 1) +
                        ": Kinetics header needs time_start and time_end columns");
  Manifest m;
  m.source = "kinetics csv: " + path;
  VideoLocator locate(path, videos_dir, 3);
  std::vector<std::string> names, where;
  for (size_t i = first + 1; i < lines.size(); ++i) {
    if (trim(lines[i]).empty()) continue;
    const std::string at = "line " + std::to_string(i + 1);
    const auto f = split_csv(lines[i]);
    const int need = std::max({c_label, c_id, c_start, c_end});
    if (static_cast<int>(f.size()) <= need)
      fail_file(path, at + ": " + std::to_string(f.size()) + " fields, expected " +
                          std::to_string(header.size()));
    // A clip's start or end: finite, >= 0 and below a year (inf, nan or 1e300 would wrap the
    // file name's integer).
    auto seconds = [&](int c) {
      constexpr double kMaxSeconds = 366.0 * 24 * 3600;
      try {
        size_t pos = 0;
        const double s = std::stod(f[c], &pos);
        if (pos != f[c].size() || !std::isfinite(s) || s < 0 || s >= kMaxSeconds)
          throw std::invalid_argument("");
        return static_cast<int64_t>(s);
      } catch (const std::exception&) {
        fail_file(path, at + ": " + quoted_short(header[c]) + " " + quoted_short(f[c]) +
                            " is not a time in seconds (a finite number from 0 to a year)");
      }
    };
    char buf[64];
    std::snprintf(buf, sizeof(buf), "_%06lld_%06lld", static_cast<long long>(seconds(c_start)),
                  static_cast<long long>(seconds(c_end)));
    VideoEntry v;
    v.id = f[c_id] + buf;
    v.path = locate.by_stem(v.id, ".mp4");
    m.videos.push_back(std::move(v));
    names.push_back(c_label >= 0 ? f[c_label] : "");
    where.push_back(at);
  }
  assign_string_labels(m, names);
  check_unique_ids(m, path, where);
  return m;
}

// Generic lists: `path,label` CSV (header optional) or whitespace-separated `path [label]` /
// mmaction2 rawframes `path num_frames label` lines. Integer labels are class indices; any
// non-integer label makes all labels class names (sorted → indices).
Manifest read_list(const std::string& path, const std::vector<std::string>& lines, size_t first,
                   bool csv, const std::string& videos_dir) {
  Manifest m;
  m.source = std::string(csv ? "csv" : "list") + ": " + path;
  VideoLocator locate(path, videos_dir, 1);
  std::vector<std::string> labels, where;
  int c_path = 0, c_label = 1;
  if (csv) {
    const auto h = split_csv(lines[first]);
    const int p = find_column(h, {"path", "video", "filename", "file", "video_path", "name"});
    if (p >= 0) {  // a header row
      c_path = p;
      c_label = find_column(h, {"label", "class", "category", "label_id"});
      ++first;
    }
  }
  for (size_t i = first; i < lines.size(); ++i) {
    const std::string line = trim(lines[i]);
    if (line.empty() || line[0] == '#') continue;
    const std::string at = "line " + std::to_string(i + 1);
    std::vector<std::string> f = csv ? split_csv(line) : split_ws(line);
    std::string p, label;
    if (csv) {
      if (static_cast<int>(f.size()) <= c_path) fail_file(path, at + ": no path field");
      p = f[c_path];
      if (c_label >= 0 && c_label < static_cast<int>(f.size())) label = f[c_label];
    } else {
      // A path may contain spaces: when the whole line names an existing file, it is the path.
      std::error_code ec;
      if (f.size() > 1 && fs::exists(locate.by_path(line), ec)) f = {line};
      if (f.size() > 3)
        fail_file(path, at + ": expected 'path', 'path label' or 'path frames label', got " +
                            std::to_string(f.size()) + " fields");
      p = f[0];
      if (f.size() >= 2) label = f.back();
    }
    if (p.empty()) fail_file(path, at + ": empty path");
    VideoEntry v;
    v.id = id_from_path(p);
    v.path = locate.by_path(p);
    if (!csv && !label.empty()) {
      int64_t idx;
      if (!parse_int(label, idx) || idx < -1)
        fail_file(path, at + ": label " + quoted_short(label) + " is not a class index");
    }
    m.videos.push_back(std::move(v));
    labels.push_back(label);
    where.push_back(at);
  }
  bool all_int = true;
  for (const auto& l : labels) {
    int64_t idx;
    if (!l.empty() && (!parse_int(l, idx) || idx < -1)) all_int = false;
  }
  if (all_int) {
    for (size_t i = 0; i < labels.size(); ++i) {
      int64_t idx = -1;
      if (!labels[i].empty()) parse_int(labels[i], idx);
      m.videos[i].label = idx;
    }
  } else {
    assign_string_labels(m, labels);
  }
  check_unique_ids(m, path, where);
  return m;
}

// A folder of videos (recursively). When every video sits in a direct subfolder, the subfolders
// are the classes (the ImageFolder / UCF-101 layout).
Manifest read_directory(const std::string& dir) {
  Manifest m;
  m.source = "directory: " + dir;
  std::vector<fs::path> files;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && is_video_extension(it->path().extension().string()))
      files.push_back(fs::relative(it->path(), dir));
  }
  if (ec) fail_file(dir, "cannot list folder: " + ec.message());
  std::sort(files.begin(), files.end());
  bool class_folders = !files.empty();
  std::set<std::string> folders;
  for (const auto& f : files) {
    const auto parts = std::distance(f.begin(), f.end());
    if (parts != 2) class_folders = false;
    folders.insert(f.begin()->string());
  }
  if (folders.size() < 2) class_folders = false;
  std::vector<std::string> names, where;
  for (const auto& f : files) {
    VideoEntry v;
    v.id = id_from_path(f.generic_string());
    v.path = (fs::path(dir) / f).string();
    m.videos.push_back(std::move(v));
    names.push_back(class_folders ? f.begin()->string() : "");
    where.push_back("file " + f.generic_string());
  }
  if (class_folders) assign_string_labels(m, names);
  check_unique_ids(m, dir, where);
  return m;
}

}  // namespace

Manifest read_manifest(const std::string& path, const std::string& videos_dir) {
  if (fs::is_directory(path)) {
    Manifest m = read_directory(path);
    if (m.videos.empty()) fail_file(path, "no video files in this folder");
    return m;
  }
  if (!fs::exists(path)) fail_file(path, "manifest does not exist");
  const std::string ext = lower(fs::path(path).extension().string());
  Manifest m;
  if (ext == ".json") {
    m = read_ssv2(path, videos_dir);
  } else {
    const auto lines = read_lines(path);
    size_t first = 0;
    while (first < lines.size() && trim(lines[first]).empty()) ++first;
    if (first == lines.size()) fail_file(path, "manifest is empty");
    const bool csv = ext == ".csv";
    if (csv && find_column(split_csv(lines[first]), {"youtube_id"}) >= 0)
      m = read_kinetics(path, lines, first, videos_dir);
    else
      m = read_list(path, lines, first, csv, videos_dir);
  }
  if (m.videos.empty()) fail_file(path, "manifest lists no videos");
  return m;
}

std::string ssv2_label_of_template(std::string s) {
  s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return c == '[' || c == ']'; }), s.end());
  return s;
}

}  // namespace vidfuse::data
