// Settings*: the field-table mechanism of core/settings.h (JSON round trip, strict reading,
// per-field checks, command-line flags) on a small struct of every supported kind, then the flags
// the train config's tables give `vidfuse train`.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "vidfuse/core/settings.h"
#include "vidfuse/core/settings_cli.h"
#include "vidfuse/train/train_config.h"

using namespace vidfuse;
using namespace vidfuse::test;
using nlohmann::json;

namespace {

std::string error_text(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

enum class Shape { kRound, kSquare };
std::string shape_name(Shape s) { return s == Shape::kRound ? "round" : "square"; }

// Nested without a validate(): its checks read "<where>: inner.k must be ...".
struct Inner {
  int64_t k = 2;
  std::vector<int64_t> layers;
  template <class V>
  void fields(V& v) {
    v(settings::field("k", k, "An integer").flag("--k").at_least(1));
    v(settings::field("layers", layers, "Layer indices").at_least(0));
  }
};

// Nested with a validate() of its own: checked as "<where>: part: ...".
struct Part {
  double p = 0.5;
  template <class V>
  void fields(V& v) {
    v(settings::field("p", p, "A probability").in(0, 1, /*closed=*/true));
  }
  void validate(const std::string& where) const { settings::check_fields(*this, where); }
};

struct Demo {
  int64_t count = 3;
  double lr = 0.1;
  bool on = true;
  std::string mode = "a";
  Shape shape = Shape::kRound;
  std::array<int64_t, 3> grid{1, 2, 3};
  std::array<double, 2> range{0.2, 0.8};
  json raw = json::object();
  Inner inner;
  Part part;
  template <class V>
  void fields(V& v) {
    using settings::field;
    v(field("count", count, "A count").flag("--count").positive());
    v(field("lr", lr, "A rate").flag("--lr").positive());
    v(field("on", on, "A switch").flag("--on"));
    v(field("mode", mode, "A mode").one_of({"a", "b", "c"}).flag("--mode"));
    v(field("shape", shape, "A shape")
          .named(std::array<Shape, 2>{Shape::kRound, Shape::kSquare}, shape_name)
          .flag("--shape"));
    v(field("grid", grid, "A grid").positive());
    v(field("range", range, "A range").in(0, 1).note("fractions"));
    v(field("raw", raw, "Raw JSON"));
    v.object("inner", inner);
    v.object("part", part);
  }
};

std::string read_error(const json& j) {
  return error_text([&] {
    Demo d;
    settings::read_fields(d, j, "demo.json");
  });
}
std::string check_error(const Demo& d) {
  return error_text([&] { settings::check_fields(d, "demo.json"); });
}

}  // namespace

TEST(Settings, JsonRoundTripOfEveryKind) {
  Demo d;
  d.count = 7;
  d.lr = 1;
  d.on = false;
  d.mode = "c";
  d.shape = Shape::kSquare;
  d.grid = {4, 5, 6};
  d.inner.layers = {3, 7};
  d.raw = {{"anything", {1, "two"}}};
  d.part.p = 1;
  const json j = settings::to_json_fields(d);
  EXPECT_EQ(j["shape"], "square");  // enums by name
  EXPECT_EQ(j["inner"]["layers"], json({3, 7}));
  EXPECT_TRUE(j["lr"].is_number_float());
  Demo back;
  settings::read_fields(back, j, "t");
  EXPECT_EQ(settings::to_json_fields(back), j);
  EXPECT_EQ(back.shape, Shape::kSquare);
  EXPECT_EQ(back.inner.layers, (std::vector<int64_t>{3, 7}));
  // Absent keys keep the defaults; integers may be written 5.0; numbers may be integers.
  Demo partial;
  settings::read_fields(partial, {{"count", 5.0}, {"lr", 2}, {"inner", {{"k", 4}}}}, "t");
  EXPECT_EQ(partial.count, 5);
  EXPECT_EQ(partial.lr, 2.0);
  EXPECT_EQ(partial.inner.k, 4);
  EXPECT_EQ(partial.mode, "a");
  EXPECT_EQ(partial.grid, (std::array<int64_t, 3>{1, 2, 3}));
}

TEST(Settings, StrictReadingNamesKeysAndTypes) {
  const std::string unknown = read_error({{"cuont", 1}});
  EXPECT_NE(unknown.find("demo.json: unknown key \"cuont\""), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("(known keys: count, grid, inner, lr, mode, on, part, range, raw, shape)"),
            std::string::npos)
      << unknown;
  const std::string nested = read_error({{"inner", {{"kk", 1}}}});
  EXPECT_NE(nested.find("demo.json: inner: unknown key \"kk\" (known keys: k, layers)"),
            std::string::npos)
      << nested;
  EXPECT_NE(read_error({{"count", "3"}}).find("demo.json: \"count\" must be an integer, got \"3\""),
            std::string::npos);
  EXPECT_NE(read_error({{"count", 1.5}}).find("\"count\" must be an integer"), std::string::npos);
  EXPECT_NE(read_error({{"on", 1}}).find("\"on\" must be true or false"), std::string::npos);
  EXPECT_NE(read_error({{"grid", {1, 2}}}).find("\"grid\" must be an array of 3 integers"),
            std::string::npos);
  EXPECT_NE(read_error({{"inner", {{"layers", {1, "x"}}}}})
                .find("demo.json: inner: \"layers\" must be an array of integers"),
            std::string::npos);
  EXPECT_NE(read_error({{"shape", "oval"}})
                .find("demo.json: shape \"oval\" is not one of \"round\", \"square\""),
            std::string::npos);
  EXPECT_NE(read_error(json::array()).find("demo.json: expected a JSON object"), std::string::npos);
}

TEST(Settings, FieldChecksNameTheField) {
  Demo d;
  EXPECT_NO_THROW(settings::check_fields(d, "demo.json"));
  d.count = 0;
  EXPECT_EQ(check_error(d), "demo.json: count must be positive, got 0");
  d = Demo{};
  d.mode = "z";
  EXPECT_EQ(check_error(d), "demo.json: mode must be \"a\", \"b\" or \"c\", got \"z\"");
  d = Demo{};
  d.grid = {1, 0, 3};
  EXPECT_EQ(check_error(d), "demo.json: grid entries must be positive, got [1, 0, 3]");
  d = Demo{};
  d.range = {0.5, 1.0};
  EXPECT_EQ(check_error(d),
            "demo.json: range entries must be in [0, 1) (fractions), got [0.5, 1.0]");
  d = Demo{};
  d.inner.k = 0;
  EXPECT_EQ(check_error(d), "demo.json: inner.k must be >= 1, got 0");
  d = Demo{};
  d.inner.layers = {2, -1};
  EXPECT_EQ(check_error(d), "demo.json: inner.layers entries must be >= 0, got [2, -1]");
  d = Demo{};
  d.part.p = 1.5;  // a nested struct with its own validate() keeps its own "where"
  EXPECT_EQ(check_error(d), "demo.json: part: p must be in [0, 1], got 1.5");
}

namespace {
// Parses `args` with the flags of Demo's table registered under `pointer`; returns the overrides.
settings::Overrides parse_demo_flags(const std::vector<std::string>& args,
                                     const std::string& pointer = "") {
  CLI::App app;
  settings::Overrides overrides;
  settings::add_flags<Demo>(app, overrides, pointer);
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 parses from the back
  app.parse(reversed);
  return overrides;
}
}  // namespace

TEST(Settings, FlagsOfEachTypeOverrideTheFile) {
  json file = {{"count", 5}, {"lr", 0.5}, {"mode", "b"}, {"inner", {{"k", 9}}}};
  parse_demo_flags({"--count", "8", "--lr", "1", "--on", "false", "--mode", "c", "--shape",
                    "square", "--k", "4"})
      .apply_to(file);
  EXPECT_EQ(file["count"], 8);
  EXPECT_TRUE(file["count"].is_number_integer());
  EXPECT_TRUE(file["lr"].is_number_float()) << file.dump();  // `--lr 1` is the float 1.0
  EXPECT_EQ(file["inner"]["k"], 4);
  Demo d;
  settings::read_fields(d, file, "flags");
  EXPECT_EQ(d.count, 8);
  EXPECT_EQ(d.lr, 1.0);
  EXPECT_FALSE(d.on);
  EXPECT_EQ(d.mode, "c");
  EXPECT_EQ(d.shape, Shape::kSquare);
  EXPECT_EQ(d.inner.k, 4);
  // Flags not given leave the file's values.
  json untouched = file;
  parse_demo_flags({}).apply_to(untouched);
  EXPECT_EQ(untouched, file);
  // An integer flag refuses a fraction; an enum flag's bad name is the field's error.
  EXPECT_THROW(parse_demo_flags({"--count", "1.5"}), CLI::ParseError);
  json bad = json::object();
  parse_demo_flags({"--shape", "oval"}).apply_to(bad);
  EXPECT_NE(read_error(bad).find("shape \"oval\" is not one of"), std::string::npos);
  // Registered under a JSON pointer, the flags write there.
  json deep = json::object();
  parse_demo_flags({"--k", "6", "--lr", "2"}, "/outer/demo").apply_to(deep);
  EXPECT_EQ(deep, json({{"outer", {{"demo", {{"inner", {{"k", 6}}}, {"lr", 2.0}}}}}}));
}

TEST(Settings, TrainFlagsOverrideTheConfig) {
  CLI::App app;
  settings::Overrides overrides;
  settings::add_flags<train::TrainConfig>(app, overrides);
  for (const char* flag :
       {"--epochs", "--max-steps", "--batch-size", "--lr",         "--seed",   "--eval-every",
        "--width",  "--depth",     "--arch",       "--source",     "--store",  "--train",
        "--val",    "--videos",    "--streams",    "--bad-videos", "--output", "--resume",
        "--device", "--precision", "--augment",    "--hflip"})
    EXPECT_NE(app.get_option_no_throw(flag), nullptr) << flag;
  std::vector<std::string> args = {"--lr",      "1",       "--epochs", "3",         "--arch",
                                   "late",      "--depth", "0",        "--augment", "false",
                                   "--streams", "motion",  "--output", "/tmp/x"};
  std::reverse(args.begin(), args.end());
  app.parse(args);
  json file = {{"epochs", 10}, {"lr", 0.01}, {"model", {{"width", 64}, {"heads", 4}}}};
  overrides.apply_to(file);
  const train::TrainConfig c = train::train_config_from_json(file, "run.json");
  EXPECT_EQ(c.lr, 1.0);
  EXPECT_EQ(c.epochs, 3);
  EXPECT_EQ(c.model.arch, models::FusionArch::kLate);
  EXPECT_EQ(c.model.depth, 0);
  EXPECT_EQ(c.model.width, 64);  // from the file
  EXPECT_FALSE(c.data.augment.enabled);
  EXPECT_EQ(c.data.streams, "motion");
  EXPECT_EQ(c.output_dir, "/tmp/x");
  // The saved form keeps the keys and layout of before (a checkpoint's "config").
  const json saved = train::to_json(c);
  EXPECT_TRUE(saved["lr"].is_number_float());
  EXPECT_EQ(saved["data"]["augment"]["enabled"], false);
  EXPECT_EQ(saved["model"]["arch"], "late");
  EXPECT_TRUE(saved["data"]["extract"].is_object());
  EXPECT_EQ(saved.size(), 25u);
  EXPECT_EQ(saved["data"].size(), 11u);  // + the loader's readers and prefetch
  EXPECT_EQ(saved["data"]["augment"].size(), 5u);
  EXPECT_EQ(saved["model"].size(), 20u);
}

TEST(Settings, TrainConfigErrorsKeepTheirForm) {
  auto err = [](const json& j) {
    return error_text([&] { train::train_config_from_json(j, "r.json"); });
  };
  EXPECT_NE(err({{"data", {{"streams", "sideways"}}}})
                .find("r.json: data.streams must be \"both\", \"semantic\" or \"motion\", got "
                      "\"sideways\""),
            std::string::npos);
  EXPECT_NE(err({{"data", {{"augment", {{"flip", true}}}}}})
                .find("r.json: data.augment: unknown key \"flip\""),
            std::string::npos);
  EXPECT_NE(err({{"model", {{"width", 0}}}}).find("r.json: model: width must be positive, got 0"),
            std::string::npos);
  EXPECT_NE(err({{"grad_clip", -1}}).find("r.json: grad_clip must be >= 0 (0 = off), got -1.0"),
            std::string::npos);
  EXPECT_NE(err({{"min_lr", 1.0}}).find("r.json: min_lr must be in [0, lr]"), std::string::npos);
  EXPECT_NE(err({{"resume", "auto"}}).find("resume \"auto\" needs an output_dir"),
            std::string::npos);
  EXPECT_NE(err({{"mixup_prob", 1.5}}).find("r.json: mixup_prob must be in [0, 1], got 1.5"),
            std::string::npos);
}
