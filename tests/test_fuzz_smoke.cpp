// A seeded fuzz smoke test of every parser of user files: a few hundred mutations of a small valid
// input each (byte flips, truncations, large numbers written over fields or into text, duplicated
// slices, deep nesting), read in-process. Each read must either succeed or throw a vidfuse::Error
// whose message names the file: no signal, no hang, no other exception type (a bare bad_alloc, a
// LibTorch or nlohmann message standing alone). Seeds are fixed, so a failure reproduces; the
// message gives the parser, the mutation's index and what it did.
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "test_util.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/json_file.h"
#include "vidfuse/data/extract_recipe.h"
#include "vidfuse/data/manifest.h"
#include "vidfuse/models/dinov3_config.h"
#include "vidfuse/models/fusion_config.h"
#include "vidfuse/train/train_config.h"
#include "vidfuse/weights/safetensors.h"
#include "vidfuse/weights/torch_pickle.h"
#include "vidfuse/weights/zip_reader.h"

using namespace vidfuse;
using vidfuse::test::fixture;
using vidfuse::test::read_bytes;
using vidfuse::test::ScratchDir;
using vidfuse::test::write_bytes;
namespace fs = std::filesystem;

namespace {

constexpr int kMutations = 300;  // per parser

// Seeded mutations. `text` mutations write numbers and brackets as text (JSON, CSV); the others
// write them as little-endian binary fields (headers, pickles, zip records).
class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  std::string mutate(std::string s, bool text, std::string* what) {
    const int kind = pick(text ? 6 : 5);
    const size_t at = s.empty() ? 0 : pick(s.size());
    switch (kind) {
      case 0: {  // flip a few bytes
        const int n = 1 + pick(8);
        for (int i = 0; i < n && !s.empty(); ++i)
          s[pick(s.size())] ^= static_cast<char>(1 + pick(255));
        *what = "flip " + std::to_string(n) + " bytes";
        break;
      }
      case 1:  // truncate
        s.resize(at);
        *what = "truncate at " + std::to_string(at);
        break;
      case 2: {  // duplicate a slice
        const size_t len = std::min<size_t>(1 + pick(64), s.size() - at);
        s.insert(at, s.substr(at, len));
        *what = "duplicate " + std::to_string(len) + " bytes at " + std::to_string(at);
        break;
      }
      case 3: {  // a large number over a field / into the text
        if (text) {
          static const char* numbers[] = {"99999999999999999999999",
                                          "1e308",
                                          "-1",
                                          "1e18",
                                          "18446744073709551615",
                                          "4294967296",
                                          "-9223372036854775809",
                                          "0",
                                          "1e-320",
                                          "nan"};
          const std::string n = numbers[pick(std::size(numbers))];
          s.insert(at, n);
          *what = "insert " + n + " at " + std::to_string(at);
        } else {
          static const uint64_t numbers[] = {0xffffffffull, 0x7fffffffffffffffull, 1ull << 40,
                                             0x80000000ull, 0xffffffffffffffffull, 1ull << 31};
          const uint64_t n = numbers[pick(std::size(numbers))];
          const int width = pick(2) ? 8 : 4;
          for (int i = 0; i < width && at + i < s.size(); ++i)
            s[at + i] = static_cast<char>(n >> (8 * i));
          *what = "write " + std::to_string(n) + " (" + std::to_string(width) + " bytes) at " +
                  std::to_string(at);
        }
        break;
      }
      case 4: {  // random bytes
        const int n = 1 + pick(16);
        std::string junk;
        for (int i = 0; i < n; ++i) junk += static_cast<char>(pick(256));
        s.insert(at, junk);
        *what = "insert " + std::to_string(n) + " random bytes at " + std::to_string(at);
        break;
      }
      default: {  // deep nesting
        const size_t depth = pick(2) ? 300 : 100000;
        s.insert(at, std::string(depth, pick(2) ? '[' : '{'));
        *what = "insert " + std::to_string(depth) + " brackets at " + std::to_string(at);
      }
    }
    return s;
  }

 private:
  size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  std::mt19937_64 rng_;
};

// Runs `read` on kMutations mutations of `base`; `write` puts the bytes where `read` looks and
// returns the name an error must mention.
void fuzz(const std::string& parser, uint64_t seed, const std::string& base, bool text,
          const std::function<std::string(const std::string&)>& write,
          const std::function<void(const std::string& name)>& read) {
  Mutator m(seed);
  int rejected = 0;
  for (int i = 0; i < kMutations; ++i) {
    std::string what;
    const std::string bytes = m.mutate(base, text, &what);
    const std::string name = write(bytes);
    const std::string where = parser + " mutation " + std::to_string(i) + " (" + what + ")";
    try {
      read(name);
    } catch (const Error& e) {
      ++rejected;
      const std::string msg = e.what();
      if (msg.find(name) == std::string::npos) ADD_FAILURE() << where << ": unnamed: " << msg;
      if (msg.size() > 4000)
        ADD_FAILURE() << where << ": " << msg.size() << "-byte message: " << msg.substr(0, 300);
    } catch (const std::exception& e) {
      ADD_FAILURE() << where << ": not a vidfuse::Error: " << e.what();
    }
  }
  // Some mutations must be refused, or the reader is not being exercised (a list of paths
  // accepts most of them, so no more is asked).
  EXPECT_GT(rejected, 0) << parser;
}

// A zip of stored entries (no data descriptors), for mutating entry contents with valid CRCs.
std::string zip_of(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out, central;
  auto le = [](std::string& s, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) s += static_cast<char>(v >> (8 * i));
  };
  for (const auto& [name, data] : entries) {
    const uint32_t crc = weights::crc32(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    const uint64_t local = out.size();
    le(out, 0x04034b50, 4), le(out, 20, 2), le(out, 0, 2), le(out, 0, 2), le(out, 0, 4);
    le(out, crc, 4), le(out, data.size(), 4), le(out, data.size(), 4);
    le(out, name.size(), 2), le(out, 0, 2);
    out += name + data;
    le(central, 0x02014b50, 4), le(central, 20, 2), le(central, 20, 2), le(central, 0, 2);
    le(central, 0, 2), le(central, 0, 4), le(central, crc, 4), le(central, data.size(), 4);
    le(central, data.size(), 4), le(central, name.size(), 2), le(central, 0, 2);
    le(central, 0, 2), le(central, 0, 2), le(central, 0, 2), le(central, 0, 4);
    le(central, local, 4);
    central += name;
  }
  const uint64_t cd_offset = out.size();
  out += central;
  le(out, 0x06054b50, 4), le(out, 0, 2), le(out, 0, 2), le(out, entries.size(), 2);
  le(out, entries.size(), 2), le(out, central.size(), 4), le(out, cd_offset, 4), le(out, 0, 2);
  return out;
}

}  // namespace

TEST(FuzzSmoke, Safetensors) {
  ScratchDir dir;
  const std::string base = read_bytes(fixture("checkpoints/small_state_dict.safetensors"));
  const std::string path = dir / "m.safetensors";
  fuzz(
      "safetensors", 1, base, false,
      [&](const std::string& b) { return write_bytes(path, b), path; },
      [](const std::string& p) { weights::load_safetensors(p); });
  // The JSON header as text: numbers and brackets where the header's are.
  fuzz(
      "safetensors header", 2, base, true,
      [&](const std::string& b) { return write_bytes(path, b), path; },
      [](const std::string& p) { weights::load_safetensors(p, torch::kFloat32); });
}

TEST(FuzzSmoke, ZipCheckpoint) {
  const std::string base = read_bytes(fixture("checkpoints/small_zip.pt"));
  const std::string name = "fuzz/zip.pt";
  // Whole-file mutations: the archive's records.
  std::string current;
  fuzz(
      "zip .pt records", 5, base, false, [&](const std::string& b) { return current = b, name; },
      [&](const std::string& n) { weights::read_torch_checkpoint_from_memory(n, current); });
  // Entry mutations with valid CRCs: the pickle and the storages behind the archive's checks.
  const weights::ZipReader zip(reinterpret_cast<const uint8_t*>(base.data()), base.size(), name);
  std::vector<std::pair<std::string, std::string>> entries;
  size_t pkl = 0;
  for (const auto& e : zip.entries()) {
    if (e.name.size() >= 8 && e.name.substr(e.name.size() - 8) == "data.pkl") pkl = entries.size();
    entries.emplace_back(e.name, std::string(zip.read(e)));
  }
  ASSERT_NO_THROW(weights::read_torch_checkpoint_from_memory(name, zip_of(entries)));
  fuzz(
      "zip .pt data.pkl", 6, entries[pkl].second, false,
      [&](const std::string& b) {
        auto mutated = entries;
        mutated[pkl].second = b;
        current = zip_of(mutated);
        return name;
      },
      [&](const std::string& n) { weights::read_torch_checkpoint_from_memory(n, current); });
}

TEST(FuzzSmoke, LegacyPickleCheckpoint) {
  for (const char* file : {"small_legacy_v2.pt", "small_legacy_v1.pt"}) {
    const std::string base = read_bytes(fixture(std::string("checkpoints/") + file));
    const std::string name = std::string("fuzz/") + file;
    std::string current;
    fuzz(
        file, 7, base, false, [&](const std::string& b) { return current = b, name; },
        [&](const std::string& n) { weights::read_torch_checkpoint_from_memory(n, current); });
  }
}

TEST(FuzzSmoke, JsonSettingsAndConfigs) {
  ScratchDir dir;
  const std::string path = dir / "config.json";
  auto write = [&](const std::string& b) { return write_bytes(path, b), path; };
  fuzz("fusion config", 8, models::to_json(models::FusionConfig{}).dump(2), true, write,
       [](const std::string& p) { models::fusion_config_from_json(read_json_file(p), p); });
  fuzz("train config", 9, train::to_json(train::TrainConfig{}).dump(2), true, write,
       [](const std::string& p) { train::train_config_from_json(read_json_file(p), p); });
  fuzz("extract recipe", 10, data::to_json(data::ExtractRecipe{}).dump(2), true, write,
       [](const std::string& p) { data::extract_recipe_from_json(read_json_file(p), p); });
  fuzz("dinov3 config.json", 11, read_bytes(fixture("dinov3/tiny-mlp/config.json")), true, write,
       [](const std::string& p) { models::DinoV3Config::from_file(p); });
}

TEST(FuzzSmoke, Manifests) {
  ScratchDir dir;
  write_bytes(dir / "ssv2/labels.json",
              R"({"Holding something": "0", "Dropping something": "1", "Pushing something": "2"})");
  auto at = [&](const std::string& rel) {
    return [&, rel](const std::string& b) {
      fs::create_directories(fs::path(dir / rel).parent_path());
      write_bytes(dir / rel, b);
      return dir / rel;
    };
  };
  auto read = [](const std::string& p) { data::read_manifest(p); };
  fs::create_directories(dir / "ssv2");
  fuzz(
      "ssv2 json", 12,
      R"([{"id": "1", "template": "Holding [something]"}, {"id": 22, "template": "Dropping [something]"},
           {"id": "333", "label": "x", "template": "Pushing [something]", "placeholders": ["a"]}])",
      true, at("ssv2/train.json"), read);
  fs::create_directories(dir / "kinetics");
  fuzz("kinetics csv", 13,
       "label,youtube_id,time_start,time_end,split,is_cc\n"
       "\"passing American football (in game)\",-abc_def,10,20,train,0\n"
       "juggling balls,xyz123,0,10,train,0\n\"say, hi\",q1,5.5,15,val,1\n",
       true, at("kinetics/train.csv"), read);
  fs::create_directories(dir / "list");
  fuzz("generic list", 14, "a/v1.mp4 0\nb/v2.mp4 12 1\n# comment\nv3.webm 2\n", true,
       at("list/train.txt"), read);
  fuzz("generic csv", 15, "path,label\na/v1.mp4,cat\nb/v2.mp4,dog\n\"c, d/v3.mp4\",cat\n", true,
       at("list/train.csv"), read);
}
