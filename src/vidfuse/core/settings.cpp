#include "vidfuse/core/settings.h"

#include <cmath>
#include <sstream>

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
  throw Error(where_ + ": \"" + key + "\" must be " + expected + ", got " + json_.at(key).dump());
}

// Integers may be written as 16.0 (what some tools emit for a whole number).
bool JsonObjectReader::is_kind(const nlohmann::json& j, int64_t*) {
  return j.is_number_integer() ||
         (j.is_number_float() && std::floor(j.get<double>()) == j.get<double>());
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
    if (!known_.count(it.key())) unknown << (n++ ? ", " : "") << '"' << it.key() << '"';
  if (n == 0) return;
  std::ostringstream known;
  int k = 0;
  for (const auto& key : known_) known << (k++ ? ", " : "") << key;
  throw Error(where_ + ": unknown key" + (n > 1 ? "s " : " ") + unknown.str() +
              " (known keys: " + known.str() + ")");
}

namespace settings {

std::string show(const nlohmann::json& value) {
  if (!value.is_array()) return value.dump();
  std::string out = "[";
  for (size_t i = 0; i < value.size(); ++i) out += (i ? ", " : "") + show(value[i]);
  return out + "]";
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
  if (lo && hi)
    return "in " + std::string(lo_open ? "(" : "[") + num(*lo) + ", " + num(*hi) +
           (hi_open ? ")" : "]");
  if (lo) return lo_open ? (*lo == 0 ? "positive" : "> " + num(*lo)) : ">= " + num(*lo);
  if (hi) return (hi_open ? "< " : "<= ") + num(*hi);
  return "anything";
}

}  // namespace settings
}  // namespace vidfuse
