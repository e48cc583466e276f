// The feature store's schema is declared once (data/store_schema.h): the store's completeness check
// follows it, and the per-video table of docs/extraction.md must list exactly its tensors and shapes.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "vidfuse/core/error.h"
#include "vidfuse/data/feature_store.h"
#include "vidfuse/data/store_schema.h"

using namespace vidfuse;
using namespace vidfuse::data;

TEST(StoreSchema, StreamNamesRoundTripAndUnknownIsNamed) {
  for (Stream s : kAllStreams) EXPECT_EQ(parse_stream(stream_name(s)), s);
  try {
    parse_stream("optical");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'optical'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(mixed_5c_tensor(Stream::Semantic), Error);
}

TEST(StoreSchema, RequiredTensorsAreTheSchemasTensors) {
  const auto req = required_tensors({"semantic", "flow"});
  std::vector<std::string> want;
  for (Stream s : {Stream::Semantic, Stream::Flow})
    for (const auto& t : stream_tensors(s)) want.push_back(t.name);
  EXPECT_EQ(req, want);
  EXPECT_EQ(want.front(), "semantic.cls");
  EXPECT_TRUE(is_times_tensor("flow.times"));
  EXPECT_FALSE(is_times_tensor("semantic.patch"));
}

TEST(StoreSchema, DocsTableMatchesTheSchema) {
  const std::string path = std::string(VIDFUSE_SOURCE_DIR) + "/docs/extraction.md";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  // Rows like "| motion | `motion.features` | [1024] | ... |".
  const std::regex row(R"(^\s*\| (\w+) \| `([\w.]+)` \| (\[[^\]]*\]) \|)");
  std::set<std::string> readme, schema;
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, row))
      readme.insert(m[1].str() + " " + m[2].str() + " " + m[3].str());
  }
  for (Stream s : kAllStreams)
    for (const auto& t : stream_tensors(s))
      schema.insert(stream_name(s) + " " + t.name + " " + t.shape);
  EXPECT_EQ(readme, schema) << "docs/extraction.md's per-video table and data/store_schema.h disagree";
}
