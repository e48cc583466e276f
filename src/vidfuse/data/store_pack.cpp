#include "vidfuse/data/store_pack.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <unordered_map>

#include "vidfuse/core/atomic_file.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/json_file.h"
#include "vidfuse/core/mapped_file.h"
#include "vidfuse/data/extract_recipe.h"
#include "vidfuse/data/extractor.h"
#include "vidfuse/data/feature_store.h"

namespace vidfuse::data {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr uint64_t kBlock = 512;
constexpr const char* kMemberSuffix = ".safetensors";

uint64_t round_up(uint64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

// --- ustar writing ------------------------------------------------------------------------------

void put_octal(char* field, size_t width, uint64_t value) {
  // width - 1 octal digits, zero-padded, then NUL (the ustar form every reader accepts).
  std::string digits(width - 1, '0');
  for (size_t i = width - 1; i-- > 0 && value; value >>= 3) digits[i] = char('0' + (value & 7));
  if (value) throw Error("tar: value too large for a " + std::to_string(width) + "-byte field");
  std::memcpy(field, digits.data(), width - 1);
  field[width - 1] = '\0';
}

std::string tar_header(const std::string& name, uint64_t size, char type) {
  std::string h(kBlock, '\0');
  std::memcpy(h.data(), name.data(), std::min<size_t>(name.size(), 100));
  put_octal(&h[100], 8, 0644);
  put_octal(&h[108], 8, 0);
  put_octal(&h[116], 8, 0);
  put_octal(&h[124], 12, size);
  put_octal(&h[136], 12, 0);  // mtime 0: shards of the same files are byte-identical
  h[156] = type;
  std::memcpy(&h[257], "ustar", 6);  // magic "ustar\0", version "00"
  std::memcpy(&h[263], "00", 2);
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  put_octal(&h[148], 7, sum);  // six digits, NUL, then the space already there
  return h;
}

// The headers of one member: a pax record carries names longer than ustar's 100 bytes.
std::string member_headers(const std::string& name, uint64_t size) {
  std::string out;
  if (name.size() > 100) {
    const std::string body = " path=" + name + "\n";
    size_t len = body.size() + 1;
    while (std::to_string(len).size() + body.size() != len) ++len;
    const std::string record = std::to_string(len) + body;
    out += tar_header("PaxHeader/" + name.substr(0, 80), record.size(), 'x');
    out += record;
    out.append(round_up(record.size()) - record.size(), '\0');
  }
  out += tar_header(name, size, '0');
  return out;
}

// --- ustar reading ------------------------------------------------------------------------------

uint64_t get_octal(const char* field, size_t width, const std::string& where) {
  uint64_t v = 0;
  size_t i = 0;
  while (i < width && field[i] == ' ') ++i;
  for (; i < width && field[i] >= '0' && field[i] <= '7'; ++i) v = v * 8 + uint64_t(field[i] - '0');
  if (i < width && field[i] != '\0' && field[i] != ' ')
    throw Error(where + ": tar header has a malformed number");
  return v;
}

std::string cstr(const char* p, size_t n) { return std::string(p, strnlen(p, n)); }

void pread_all(int fd, void* buf, size_t n, uint64_t off, const std::string& path,
               const std::string& what) {
  const int64_t r = pread_full(fd, buf, n, off);
  if (r < 0) fail_file(path, what + ": read failed: " + std::strerror(errno));
  if (static_cast<uint64_t>(r) < n)
    fail_file(path, what + ": the file ends early (truncated shard)");
}

// --- shard names and sidecars -------------------------------------------------------------------

std::string part_prefix(int part, int parts) {
  return "shard-" + std::to_string(part) + "of" + std::to_string(parts) + "-";
}

std::string shard_name(int part, int parts, int64_t k) {
  std::string n = std::to_string(k);
  if (n.size() < 5) n.insert(0, 5 - n.size(), '0');
  return part_prefix(part, parts) + n + ".tar";
}

std::string sidecar_path(const std::string& tar_path) {
  return tar_path.substr(0, tar_path.size() - 4) + ".json";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Every "*.tar" of the folder, sorted (temp files end in ".tmp.<pid>.<n>" and are not listed).
std::vector<std::string> list_shards(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (ends_with(name, ".tar")) out.push_back(name);
  }
  if (ec) fail_file(dir, "cannot list: " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

struct Sidecar {
  std::string shard, recipe;
  uint64_t bytes = 0;
  std::vector<std::string> ids;
  std::vector<uint64_t> offset, length;
};

json to_json(const Sidecar& s) {
  return {{"format", kPackedFormat}, {"shard", s.shard}, {"bytes", s.bytes},
          {"recipe", s.recipe},      {"ids", s.ids},     {"offset", s.offset},
          {"length", s.length}};
}

Sidecar read_sidecar(const std::string& tar_path) {
  const std::string path = sidecar_path(tar_path);
  if (!fs::exists(path))
    fail_file(tar_path, "shard has no sidecar index " + fs::path(path).filename().string() +
                            " (damaged pack: remove the shard and rerun `vidfuse store pack`)");
  const json j = read_json_file(path, "shard index");
  Sidecar s;
  try {
    if (j.value("format", "") != kPackedFormat)
      fail_file(path,
                std::string("not a vidfuse shard index (format is not '") + kPackedFormat + "')");
    s.shard = j.at("shard").get<std::string>();
    s.bytes = j.at("bytes").get<uint64_t>();
    s.recipe = j.at("recipe").get<std::string>();
    s.ids = j.at("ids").get<std::vector<std::string>>();
    s.offset = j.at("offset").get<std::vector<uint64_t>>();
    s.length = j.at("length").get<std::vector<uint64_t>>();
  } catch (const json::exception& e) {
    fail_file(path, std::string("malformed shard index: ") + e.what());
  }
  if (s.offset.size() != s.ids.size() || s.length.size() != s.ids.size())
    fail_file(path, "malformed shard index: ids, offset and length differ in length");
  if (s.shard != fs::path(tar_path).filename().string())
    fail_file(path,
              "describes shard '" + s.shard + "', not " + fs::path(tar_path).filename().string());
  return s;
}

}  // namespace

std::string PackedIndex::shard_path(size_t s) const {
  return (fs::path(dir) / shards.at(s)).string();
}

bool is_packed_store(const std::string& dir) {
  std::error_code ec;
  return fs::is_regular_file(fs::path(dir) / kPackedIndexName, ec);
}

std::string recipe_fingerprint(const std::string& store_dir) {
  const std::string path = extract_recipe_path(store_dir);
  if (!fs::exists(path)) return "none";
  const std::string canonical = read_json_file(path, "extraction settings").dump();
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(fnv1a64(canonical)));
  return hex;
}

PackedIndex read_packed_index(const std::string& dir) {
  const std::string path = (fs::path(dir) / kPackedIndexName).string();
  const json j = read_json_file(path, "packed store index");
  PackedIndex x;
  x.dir = dir;
  try {
    if (!j.is_object() || j.value("format", "") != kPackedFormat)
      fail_file(path,
                std::string("not a packed store index (format is not '") + kPackedFormat + "')");
    x.recipe = j.at("recipe").get<std::string>();
    x.shards = j.at("shards").get<std::vector<std::string>>();
    x.shard_bytes = j.at("shard_bytes").get<std::vector<uint64_t>>();
    x.shard_recipes = j.at("shard_recipes").get<std::vector<std::string>>();
    x.ids = j.at("ids").get<std::vector<std::string>>();
    x.shard = j.at("shard").get<std::vector<int32_t>>();
    x.offset = j.at("offset").get<std::vector<uint64_t>>();
    x.length = j.at("length").get<std::vector<uint64_t>>();
  } catch (const json::exception& e) {
    fail_file(path, std::string("malformed packed store index: ") + e.what());
  }
  const size_t n = x.ids.size();
  if (x.shard.size() != n || x.offset.size() != n || x.length.size() != n)
    fail_file(path,
              "malformed packed store index: the ids, shard, offset and length columns "
              "differ in length");
  if (x.shard_bytes.size() != x.shards.size() || x.shard_recipes.size() != x.shards.size())
    fail_file(path,
              "malformed packed store index: shards, shard_bytes and shard_recipes differ "
              "in length");
  for (size_t s = 0; s < x.shards.size(); ++s) {
    const std::string& name = x.shards[s];
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
      fail_file(path, "shard name '" + name.substr(0, 80) + "' is not a file name in the store");
    if (x.shard_recipes[s] != x.recipe)
      fail_file(x.shard_path(s), "shard was packed from a store of another recipe (" +
                                     x.shard_recipes[s] + ", the store's is " + x.recipe + ")");
  }
  std::unordered_map<std::string, size_t> seen;
  seen.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (x.shard[i] < 0 || static_cast<size_t>(x.shard[i]) >= x.shards.size())
      fail_file(path, "entry '" + x.ids[i] + "': shard number " + std::to_string(x.shard[i]) +
                          " out of range");
    auto [it, fresh] = seen.emplace(x.ids[i], i);
    if (!fresh)
      fail_file(path, "id '" + x.ids[i] + "' is listed twice: in " +
                          x.shards[size_t(x.shard[it->second])] + " and " +
                          x.shards[size_t(x.shard[i])]);
  }
  return x;
}

std::vector<TarMember> read_tar_members(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_file(path, std::string("cannot open shard: ") + std::strerror(errno));
  struct Close {
    int fd;
    ~Close() { ::close(fd); }
  } closer{fd};
  const off_t end = ::lseek(fd, 0, SEEK_END);
  if (end < 0) fail_file(path, std::string("cannot size shard: ") + std::strerror(errno));
  const uint64_t size = static_cast<uint64_t>(end);
  std::vector<TarMember> out;
  uint64_t pos = 0;
  std::string pax_name;
  char h[kBlock];
  for (;;) {
    const std::string where = "member " + std::to_string(out.size()) +
                              (out.empty() ? std::string() : " (after '" + out.back().name + "')");
    if (pos + kBlock > size)
      fail_file(path,
                where + ": the shard ends before the end-of-archive blocks (truncated shard)");
    pread_all(fd, h, kBlock, pos, path, where);
    if (std::all_of(h, h + kBlock, [](char c) { return c == 0; })) break;  // end of archive
    unsigned sum = 0;
    for (size_t i = 0; i < kBlock; ++i) sum += (i >= 148 && i < 156) ? ' ' : uint8_t(h[i]);
    if (get_octal(h + 148, 8, path) != sum)
      fail_file(path, where + ": tar header checksum does not match (damaged shard)");
    const uint64_t len = get_octal(h + 124, 12, path);
    const uint64_t data = pos + kBlock;
    if (data + len > size)
      fail_file(path, where + " '" + cstr(h, 100) + "' runs past the end of the " +
                          std::to_string(size) + "-byte shard (truncated shard)");
    const char type = h[156];
    if (type == 'x') {  // pax record: its path= names the next member
      std::string rec(len, '\0');
      pread_all(fd, rec.data(), len, data, path, where);
      const auto p = rec.find(" path=");
      if (p != std::string::npos) {
        const auto e = rec.find('\n', p);
        pax_name = rec.substr(p + 6, e == std::string::npos ? std::string::npos : e - p - 6);
      }
    } else if (type == '0' || type == '\0') {
      std::string name = cstr(h, 100);
      const std::string prefix = cstr(h + 345, 155);
      if (!prefix.empty()) name = prefix + "/" + name;
      if (!pax_name.empty()) name = pax_name;
      pax_name.clear();
      out.push_back({name, data, len});
    }
    pos = data + round_up(len);
  }
  return out;
}

uint64_t parse_byte_size(const std::string& text, const std::string& what) {
  size_t end = 0;
  double v = 0;
  try {
    v = std::stod(text, &end);
  } catch (const std::exception&) {
    end = 0;
  }
  std::string unit = text.substr(end);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::map<std::string, double> units = {
      {"", 1},      {"B", 1},        {"KB", 1e3},        {"MB", 1e6},          {"GB", 1e9},
      {"TB", 1e12}, {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0}};
  auto it = units.find(unit);
  if (end == 0 || it == units.end() || !(v > 0) || v * it->second > 1e18)
    throw Error(what + " '" + text.substr(0, 40) + "': not a size (e.g. 1GB, 256MB)");
  return static_cast<uint64_t>(v * it->second);
}

PackedIndex write_packed_index(const std::string& packed) {
  PackedIndex x;
  x.dir = packed;
  x.recipe = recipe_fingerprint(packed);
  std::unordered_map<std::string, size_t> seen;
  for (const std::string& name : list_shards(packed)) {
    const std::string tar = (fs::path(packed) / name).string();
    const Sidecar s = read_sidecar(tar);
    if (s.recipe != x.recipe)
      fail_file(tar, "shard was packed from a store of another recipe (" + s.recipe +
                         ", this store's extract.json is " + x.recipe + ")");
    const int32_t k = static_cast<int32_t>(x.shards.size());
    x.shards.push_back(name);
    x.shard_bytes.push_back(s.bytes);
    x.shard_recipes.push_back(s.recipe);
    for (size_t i = 0; i < s.ids.size(); ++i) {
      auto [it, fresh] = seen.emplace(s.ids[i], size_t(k));
      if (!fresh)
        fail_file(tar, "id '" + s.ids[i] + "' is also in " + x.shards[it->second] +
                           " (two shards hold the same video)");
      x.ids.push_back(s.ids[i]);
      x.shard.push_back(k);
      x.offset.push_back(s.offset[i]);
      x.length.push_back(s.length[i]);
    }
  }
  const json j = {{"format", kPackedFormat},
                  {"recipe", x.recipe},
                  {"shards", x.shards},
                  {"shard_bytes", x.shard_bytes},
                  {"shard_recipes", x.shard_recipes},
                  {"ids", x.ids},
                  {"shard", x.shard},
                  {"offset", x.offset},
                  {"length", x.length}};
  write_text_atomically((fs::path(packed) / kPackedIndexName).string(), j.dump() + "\n");
  return x;
}

PackSummary pack_store(const std::string& loose, const std::string& packed, const PackOptions& o) {
  if (!fs::is_directory(loose)) fail_file(loose, "feature store folder does not exist");
  if (is_packed_store(loose))
    fail_file(loose, "is already a packed store (pack reads a loose store written by extract)");
  if (o.parts < 1 || o.part < 0 || o.part >= o.parts)
    throw Error("store pack: --shard must be i/n with 0 <= i < n");
  if (o.shard_bytes < kBlock) throw Error("store pack: --shard-size must be at least 512 bytes");
  if (fs::weakly_canonical(loose) == fs::weakly_canonical(packed))
    throw Error("store pack: the packed store must be another folder than " + loose);
  std::error_code ec;
  fs::create_directories(packed, ec);
  if (ec) fail_file(packed, "cannot create the packed store folder: " + ec.message());

  // The recipe travels with the shards; shards of two recipes never share a folder.
  const std::string recipe = recipe_fingerprint(loose);
  const std::string have = recipe_fingerprint(packed);
  if (have != "none" && have != recipe)
    fail_file(extract_recipe_path(packed),
              "the packed store holds features of another recipe than " +
                  extract_recipe_path(loose) + " (pack into a new folder)");
  if (recipe != "none" && have == "none") {
    for (const std::string& name : list_shards(packed))
      fail_file(
          (fs::path(packed) / name).string(),
          "shard of a store without extract.json; " + loose + " has one (pack into a new folder)");
    std::ifstream in(extract_recipe_path(loose), std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    write_text_atomically(extract_recipe_path(packed), text);
  }

  PackSummary sum;
  // What earlier runs of this part finished: every shard under its final name has its sidecar
  // (written first). Sidecars without their shard are a killed run's leftovers.
  const std::string prefix = part_prefix(o.part, o.parts);
  std::set<std::string> done;
  int64_t next_k = 0;
  for (fs::directory_iterator it(packed, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    if (ends_with(name, ".json") &&
        !fs::exists(it->path().string().substr(0, it->path().string().size() - 5) + ".tar"))
      fs::remove(it->path(), ec);
  }
  ec.clear();
  for (const std::string& name : list_shards(packed)) {
    if (name.rfind(prefix, 0) != 0) continue;
    const Sidecar s = read_sidecar((fs::path(packed) / name).string());
    if (s.recipe != recipe)
      fail_file((fs::path(packed) / name).string(),
                "shard was packed from a store of another recipe (pack into a new folder)");
    done.insert(s.ids.begin(), s.ids.end());
    next_k = std::max<int64_t>(
        next_k, std::stoll(name.substr(prefix.size(), name.size() - 4 - prefix.size())) + 1);
  }

  // This part's loose files not packed yet, in id order, grouped into shards by size.
  struct Item {
    std::string id, path;
    uint64_t bytes;
  };
  std::vector<Item> todo;
  for (const std::string& id : list_loose_ids(loose)) {
    ++sum.loose_videos;
    if (!in_shard(id, o.part, o.parts)) continue;
    ++sum.part_videos;
    if (done.count(id)) {
      ++sum.already_packed;
      continue;
    }
    const std::string path = store_file_path(loose, id);
    const StoreFileInfo info = inspect_store_file(path);
    if (!info.ok) {
      ++sum.corrupt;
      if (o.log) *o.log << "left out (damaged): " << info.error << "\n";
      continue;
    }
    todo.push_back({id, path, info.bytes});
  }

  size_t i = 0;
  while (i < todo.size()) {
    if (o.stop_after_shards >= 0 && sum.shards_written >= o.stop_after_shards) {
      sum.stopped = true;
      break;
    }
    Sidecar side;
    side.shard = shard_name(o.part, o.parts, next_k++);
    side.recipe = recipe;
    std::vector<std::string> headers;
    uint64_t pos = 0;
    size_t j = i;
    for (; j < todo.size(); ++j) {
      const std::string h = member_headers(todo[j].id + kMemberSuffix, todo[j].bytes);
      const uint64_t next = pos + h.size() + round_up(todo[j].bytes);
      if (j > i && next + 2 * kBlock > o.shard_bytes) break;
      side.ids.push_back(todo[j].id);
      side.offset.push_back(pos + h.size());
      side.length.push_back(todo[j].bytes);
      headers.push_back(h);
      pos = next;
    }
    side.bytes = pos + 2 * kBlock;
    const std::string tar = (fs::path(packed) / side.shard).string();
    write_file_atomically(tar, [&](std::ostream& out) {
      std::vector<char> buf;
      for (size_t m = i; m < j; ++m) {
        const Item& it = todo[m];
        buf.resize(round_up(it.bytes));
        std::ifstream in(it.path, std::ios::binary);
        in.read(buf.data(), static_cast<std::streamsize>(it.bytes));
        if (!in || in.peek() != std::char_traits<char>::eof())
          fail_file(it.path, "changed size while being packed (is extract still running?)");
        std::fill(buf.begin() + static_cast<std::ptrdiff_t>(it.bytes), buf.end(), '\0');
        out.write(headers[m - i].data(), static_cast<std::streamsize>(headers[m - i].size()));
        out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
      }
      const std::string end(2 * kBlock, '\0');
      out.write(end.data(), static_cast<std::streamsize>(end.size()));
      out.flush();
      if (!out) fail_file(tar, std::string("write failed (disk full?): ") + std::strerror(errno));
      // The sidecar goes first: a shard under its final name always has its index.
      write_text_atomically(sidecar_path(tar), to_json(side).dump() + "\n");
    });
    sum.packed += static_cast<int64_t>(j - i);
    sum.bytes_written += side.bytes;
    ++sum.shards_written;
    if (o.log) *o.log << side.shard << ": " << (j - i) << " videos, " << side.bytes << " bytes\n";
    i = j;
  }
  if (!sum.stopped) {
    write_packed_index(packed);
    sum.index_written = true;
  }
  return sum;
}

}  // namespace vidfuse::data
