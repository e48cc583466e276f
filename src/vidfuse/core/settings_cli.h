// Command-line flags from the field tables of core/settings.h (header-only: CLI11 is the
// command's dependency, not the library's). A flag does not set the struct directly: it records
// (JSON pointer, value) and the command writes those into the config JSON after reading the
// config file, so flags override the file and one strict reader checks both.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "vidfuse/core/settings.h"

namespace vidfuse::settings {

// The flags given, in the order CLI11 ran their callbacks. A handle: copies share one list, so
// each flag's callback can hold one.
class Overrides {
 public:
  void set(const std::string& pointer, nlohmann::json value) {
    values_->emplace_back(pointer, std::move(value));
  }
  // Writes every recorded value into `config` (objects on the way are created).
  void apply_to(nlohmann::json& config) const {
    for (const auto& [pointer, value] : *values_)
      config[nlohmann::json::json_pointer(pointer)] = value;
  }
  bool empty() const { return values_->empty(); }

 private:
  std::shared_ptr<std::vector<std::pair<std::string, nlohmann::json>>> values_ =
      std::make_shared<std::vector<std::pair<std::string, nlohmann::json>>>();
};

// One flag that sets the JSON value at `pointer` ("/data/extract/pool"), parsed as a T: an
// int64_t flag rejects "1.5", a double flag stores `--lr 1` as 1.0.
template <class T>
CLI::Option* add_flag(CLI::App& app, const Overrides& overrides, const std::string& name,
                      const std::string& pointer, const std::string& help) {
  Overrides handle = overrides;  // shares the list
  return app.add_option_function<T>(
      name, [handle, pointer](const T& v) mutable { handle.set(pointer, nlohmann::json(v)); },
      help);
}

// Visitor: a flag for every field that names one. `pointer` is the struct's place in the config
// JSON ("" for the root), so a table can serve a struct nested anywhere.
class FlagAdder {
 public:
  FlagAdder(CLI::App& app, Overrides overrides, std::string pointer)
      : app_(app), overrides_(std::move(overrides)), pointer_(std::move(pointer)) {}
  template <class T>
  void operator()(const Field<T>& f) {
    if (!f.flag_name) return;
    const std::string pointer = pointer_ + "/" + f.key;
    // The help: the table's text, then the allowed values or the range's note.
    std::string help = f.help;
    std::vector<std::string> choices = f.choices;
    if constexpr (std::is_enum_v<T>)
      for (const auto& vn : f.names) choices.push_back(vn.second);
    for (size_t i = 0; i < choices.size(); ++i)
      help += (i ? " | " : " (") + choices[i] + (i + 1 == choices.size() ? ")" : "");
    if (f.range_note) help += std::string(" (") + f.range_note + ")";
    // add_flags() visits a default-constructed struct, so the value shown is the default (a
    // string as it is typed; nothing for an empty one).
    const nlohmann::json default_value = value_json(f);
    const std::string default_text =
        default_value.is_string() ? default_value.get<std::string>() : show(default_value);
    if constexpr (std::is_same_v<T, nlohmann::json>) {
      throw Error(pointer + ": a raw JSON field cannot have a flag");
    } else if constexpr (std::is_enum_v<T>) {
      // By name, checked (with the field's error) when the config is read.
      add_flag<std::string>(app_, overrides_, f.flag_name, pointer, help)
          ->default_str(default_text);
    } else {
      add_flag<T>(app_, overrides_, f.flag_name, pointer, help)->default_str(default_text);
    }
  }
  template <class S>
  void object(const char* key, S& nested) {
    FlagAdder inner(app_, overrides_, pointer_ + "/" + key);
    nested.fields(inner);
  }

 private:
  CLI::App& app_;
  Overrides overrides_;
  std::string pointer_;
};

// Adds the flags of S's field table (and of its nested structs') to `app`.
template <class S>
void add_flags(CLI::App& app, const Overrides& overrides, const std::string& pointer = "") {
  S defaults;  // the table needs members to point at; only their types and names are used
  FlagAdder adder(app, overrides, pointer);
  defaults.fields(adder);
}

}  // namespace vidfuse::settings
