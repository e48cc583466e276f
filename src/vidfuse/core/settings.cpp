#include "vidfuse/core/settings.h"

#include <cmath>
#include <cstdint>
#include <sstream>

#include "vidfuse/core/quote.h"

namespace vidfuse {

JsonObjectReader::JsonObjectReader(const nlohmann::json& json, std::string where)
    : json_(json), where_(std::move(where)) {
  if (!json_.is_object())
    throw Error(where_ + ": expected a JSON object, got " + std::string(json_.type_name()));
}

const nlohmann::json* JsonObjectReader::take(const char* key) {
  known_.insert(key);
  auto it = json_.find(key);
  return it == json_.end() ? nullptr : &*it;
}

const nlohmann::json* JsonObjectReader::child(const char* key) { return take(key); }

void JsonObjectReader::fail_type(const char* key, const char* expected) const {
  throw Error(where_ + ": \"" + key + "\" must be " + expected + ", got " +
              settings::show(json_.at(key)));
}

// Integers may be written as 16.0 (what some tools emit for a whole number); 1e300 is not an
// int64 (converting it would be undefined), nor is an unsigned value past INT64_MAX.
bool JsonObjectReader::is_kind(const nlohmann::json& j, int64_t*) {
  if (j.is_number_unsigned()) return j.get<uint64_t>() <= uint64_t{INT64_MAX};
  if (j.is_number_integer()) return true;
  if (!j.is_number_float()) return false;
  const double d = j.get<double>();
  return std::floor(d) == d && std::fabs(d) < 9.0e18;
}

void JsonObjectReader::read(const char* key, int64_t& out) {
  const nlohmann::json* v = take(key);
  if (!v) return;
  if (!is_kind(*v, &out)) fail_type(key, "an integer");
  element(*v, out);
}

void JsonObjectReader::read(const char* key, double& out) {
  const nlohmann::json* v = take(key);
  if (!v) return;
  if (!v->is_number()) fail_type(key, "a number");
  out = v->get<double>();
}

void JsonObjectReader::read(const char* key, bool& out) {
  const nlohmann::json* v = take(key);
  if (!v) return;
  if (!v->is_boolean()) fail_type(key, "true or false");
  out = v->get<bool>();
}

void JsonObjectReader::read(const char* key, std::string& out) {
  const nlohmann::json* v = take(key);
  if (!v) return;
  if (!v->is_string()) fail_type(key, "a string");
  out = v->get<std::string>();
}

void JsonObjectReader::read(const char* key, nlohmann::json& out) {
  if (const nlohmann::json* v = take(key)) out = *v;
}

void JsonObjectReader::finish() const {
  std::ostringstream unknown;
  int n = 0;
  for (auto it = json_.begin(); it != json_.end(); ++it)
    if (!known_.count(it.key()) && n++ < 10)
      unknown << (n > 1 ? ", " : "") << settings::show(it.key());
  if (n == 0) return;
  if (n > 10) unknown << " and " << n - 10 << " more";
  std::ostringstream known;
  int k = 0;
  for (const auto& key : known_) known << (k++ ? ", " : "") << key;
  throw Error(where_ + ": unknown key" + (n > 1 ? "s " : " ") + unknown.str() +
              " (known keys: " + known.str() + ")");
}

namespace settings {

namespace {

constexpr size_t kShowMax = 80;

// Arrays element by element (so [1.0] stays as written), no deeper than a few levels: a value
// may nest as deep as the parser allowed, and dump() and this both recurse.
std::string show_text(const nlohmann::json& value, int depth) {
  if (value.is_array()) {
    if (depth > 4) return "[…]";
    std::string text = "[";
    for (size_t i = 0; i < value.size() && text.size() <= kShowMax; ++i)
      text += (i ? ", " : "") + show_text(value[i], depth + 1);
    return text + "]";
  }
  if (value.is_object()) {
    if (depth > 4) return "{…}";
    std::string text = "{";
    for (auto it = value.begin(); it != value.end() && text.size() <= kShowMax; ++it)
      text += (text.size() > 1 ? ", " : "") + show_text(it.key(), depth + 1) + ": " +
              show_text(it.value(), depth + 1);
    return text + "}";
  }
  // dump() escapes bytes that are not UTF-8 instead of throwing type_error.316.
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string show(const nlohmann::json& value) {
  // Shortened like quoted_short() (a hostile value may be megabytes), without its quotes: a JSON
  // string keeps its own.
  constexpr size_t kMax = kShowMax;
  const std::string text = show_text(value, 0);
  if (text.size() <= kMax) return text;
  const std::string q = quoted_short(text, kMax);  // 'head…' (N bytes)
  return q.substr(1, q.rfind('\'') - 1);           // head…
}

std::string quoted_alternatives(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i)
    out += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + ("\"" + names[i] + "\"");
  return out;
}

std::string Range::describe() const {
  auto num = [](double x) {
    std::ostringstream s;
    s << x;  // 0, 1, 1e-06: bounds as a person writes them
    return s.str();
  };
  if (hi_is_sanity) return Range{lo, std::nullopt, lo_open}.describe();
  if (lo && hi)
    return "in " + std::string(lo_open ? "(" : "[") + num(*lo) + ", " + num(*hi) +
           (hi_open ? ")" : "]");
  if (lo) return lo_open ? (*lo == 0 ? "positive" : "> " + num(*lo)) : ">= " + num(*lo);
  if (hi) return (hi_open ? "< " : "<= ") + num(*hi);
  return "anything";
}

}  // namespace settings
}  // namespace vidfuse
