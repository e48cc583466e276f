// Settings declared once. A settings struct lists its fields in one member template next to the
// members (so each field's default, key, help and checks sit together):
//
//   template <class V>
//   void fields(V& v) {
//     v(settings::field("lr", lr, "Peak learning rate").flag("--lr").positive());
//     v(settings::field("arch", arch, "Network").named(kFusionArchs, arch_name));
//     v.object("data", data);  // a nested settings struct: its own fields() recurse
//   }
//
// and the visitors below derive everything else from that one table: JSON write (to_json_fields),
// strict JSON read (read_fields: unknown keys and wrong types named), the per-field checks
// (check_fields: ranges, one-of) and, in settings_cli.h, command-line flags whose type is the
// member's C++ type. Checks that involve two fields stay in the struct's validate().
#pragma once
#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "vidfuse/core/error.h"

namespace vidfuse {

// Strict reader of one JSON object into typed values: read() takes each known key (absent keys
// leave the value as it is, i.e. the default), finish() throws if the object has keys nobody read.
// Errors: "<where>: \"key\" must be an integer, got ..." and "<where>: unknown key \"k\" (known
// keys: ...)".
class JsonObjectReader {
 public:
  JsonObjectReader(const nlohmann::json& json, std::string where);
  void read(const char* key, int64_t& out);
  void read(const char* key, double& out);
  void read(const char* key, bool& out);
  void read(const char* key, std::string& out);
  void read(const char* key, nlohmann::json& out);  // any JSON value, checked by its owner
  template <class T, size_t N>
  void read(const char* key, std::array<T, N>& out) {
    const nlohmann::json* v = take(key);
    if (!v) return;
    if (!v->is_array() || v->size() != N || !all_elements<T>(*v))
      fail_type(key, ("an array of " + std::to_string(N) + " " + kind_plural<T>()).c_str());
    for (size_t i = 0; i < N; ++i) element((*v)[i], out[i]);
  }
  template <class T>
  void read(const char* key, std::vector<T>& out) {
    const nlohmann::json* v = take(key);
    if (!v) return;
    if (!v->is_array() || !all_elements<T>(*v))
      fail_type(key, ("an array of " + kind_plural<T>()).c_str());
    out.assign(v->size(), T{});
    for (size_t i = 0; i < v->size(); ++i) element((*v)[i], out[i]);
  }
  // The member (marked as known), or nullptr when absent.
  const nlohmann::json* child(const char* key);
  // Throws if the object has keys no read()/child() asked for.
  void finish() const;
  const std::string& where() const { return where_; }

 private:
  const nlohmann::json* take(const char* key);
  [[noreturn]] void fail_type(const char* key, const char* expected) const;
  // Array elements follow the scalar rules: integers may be written 16.0, numbers may be integers.
  static bool is_kind(const nlohmann::json& j, int64_t*);
  static bool is_kind(const nlohmann::json& j, double*) { return j.is_number(); }
  static bool is_kind(const nlohmann::json& j, std::string*) { return j.is_string(); }
  template <class T>
  static bool all_elements(const nlohmann::json& array) {
    for (const auto& e : array)
      if (!is_kind(e, static_cast<T*>(nullptr))) return false;
    return true;
  }
  static void element(const nlohmann::json& j, int64_t& out) {
    out = j.is_number_integer() ? j.get<int64_t>() : static_cast<int64_t>(j.get<double>());
  }
  static void element(const nlohmann::json& j, double& out) { out = j.get<double>(); }
  static void element(const nlohmann::json& j, std::string& out) { out = j.get<std::string>(); }
  template <class T>
  static std::string kind_plural() {
    if constexpr (std::is_same_v<T, int64_t>) return "integers";
    if constexpr (std::is_same_v<T, double>) return "numbers";
    if constexpr (std::is_same_v<T, std::string>) return "strings";
  }

  const nlohmann::json& json_;
  std::string where_;
  std::set<std::string> known_;
};

namespace settings {

// "[16, 14, 14]", "1.5", "\"fp16\"": a value as error messages quote it.
std::string show(const nlohmann::json& value);
// "\"a\" or \"b\"", "\"a\", \"b\" or \"c\"".
std::string quoted_alternatives(const std::vector<std::string>& names);

// Bounds of a numeric field (of every entry of an array field).
struct Range {
  std::optional<double> lo, hi;
  bool lo_open = false, hi_open = false;
  // hi is a sanity bound (at_most): not part of the field's meaning, so describe() leaves it out
  // and only a value above it is told "must be at most ...".
  bool hi_is_sanity = false;
  bool contains(double x) const {
    return (!lo || (lo_open ? x > *lo : x >= *lo)) && (!hi || (hi_open ? x < *hi : x <= *hi));
  }
  bool above_sanity(double x) const { return hi_is_sanity && hi && x > *hi; }
  std::string describe() const;  // "positive", ">= 1", "in [0, 1)"
};

// One field's declaration: JSON key, the member, help text, and optionally a command-line flag
// name, a range (numbers), the allowed values (std::string fields) or the names of an enum's
// values (enum fields, stored in JSON by name). Built with field(...) and the chained setters.
template <class T>
struct Field {
  const char* key;
  T* value;
  const char* help;
  const char* flag_name = nullptr;
  Range range;
  const char* range_note = nullptr;              // "(0 = off)" after the range in the error
  std::vector<std::string> choices;              // std::string fields: the allowed values
  std::vector<std::pair<T, std::string>> names;  // enum fields: every value and its name

  Field& flag(const char* name) { return flag_name = name, *this; }
  Field& positive() { return range.lo = 0, range.lo_open = true, *this; }
  Field& at_least(double lo) { return range.lo = lo, range.lo_open = false, *this; }
  // A sane upper bound: far above any real setting, low enough that a hostile config (depth
  // 1e18) is refused before anything is sized by it.
  Field& at_most(double hi) {
    return range.hi = hi, range.hi_open = false, range.hi_is_sanity = true, *this;
  }
  // [lo, hi) by default (probabilities, betas); closed = true for [lo, hi].
  Field& in(double lo, double hi, bool closed = false) {
    range.lo = lo, range.hi = hi, range.lo_open = false, range.hi_open = !closed;
    return *this;
  }
  Field& note(const char* text) { return range_note = text, *this; }
  Field& one_of(std::vector<std::string> allowed) { return choices = std::move(allowed), *this; }
  template <class Values, class NameOf>
  Field& named(const Values& all, NameOf name_of) {
    for (T x : all) names.emplace_back(x, name_of(x));
    return *this;
  }

  // Enum fields: the name of a value / the value of a name ("<where>: key \"x\" is not one of
  // ..." otherwise).
  const std::string& name_of(T x) const {
    for (const auto& [v, n] : names)
      if (v == x) return n;
    throw Error(std::string(key) + ": a value without a name");
  }
  T parse(const std::string& name, const std::string& where) const {
    for (const auto& [v, n] : names)
      if (n == name) return v;
    throw Error(where + ": " + key + " " + show(name) + " is not one of " + name_list(", "));
  }
  std::string name_list(const char* sep) const {
    std::string out;
    for (const auto& vn : names)
      out += (out.empty() ? "\"" : std::string(sep) + "\"") + vn.second + "\"";
    return out;
  }
};

template <class T>
Field<T> field(const char* key, T& value, const char* help = "") {
  return Field<T>{key, &value, help};
}

// The JSON form of a field's current value (enums by name).
template <class T>
nlohmann::json value_json(const Field<T>& f) {
  if constexpr (std::is_enum_v<T>)
    return f.name_of(*f.value);
  else
    return nlohmann::json(*f.value);
}

namespace detail {
template <class T>
struct is_sequence : std::false_type {};
template <class T, size_t N>
struct is_sequence<std::array<T, N>> : std::true_type {};
template <class T>
struct is_sequence<std::vector<T>> : std::true_type {};
template <class T>
constexpr bool is_number_v = std::is_arithmetic_v<T> && !std::is_same_v<T, bool>;

template <class S, class = void>
struct has_validate : std::false_type {};
template <class S>
struct has_validate<S, std::void_t<decltype(std::declval<const S&>().validate(std::string()))>>
    : std::true_type {};
}  // namespace detail

// Visitor: the struct as a JSON object.
class FieldWriter {
 public:
  template <class T>
  void operator()(const Field<T>& f) {
    json_[f.key] = value_json(f);
  }
  template <class S>
  void object(const char* key, S& nested) {
    FieldWriter inner;
    nested.fields(inner);
    json_[key] = std::move(inner.json_);
  }
  nlohmann::json take() { return std::move(json_); }

 private:
  nlohmann::json json_ = nlohmann::json::object();
};

// Visitor: reads the fields present in a JSON object over the defaults. Nested objects are read
// with "<where>: <dotted path>" in their errors ("run.json: data.augment: unknown key ...").
class FieldReader {
 public:
  FieldReader(const nlohmann::json& json, const std::string& root, std::string path = "")
      : reader_(json, path.empty() ? root : root + ": " + path),
        root_(root),
        path_(std::move(path)) {}
  template <class T>
  void operator()(const Field<T>& f) {
    if constexpr (std::is_enum_v<T>) {
      std::string name = f.name_of(*f.value);
      reader_.read(f.key, name);
      *f.value = f.parse(name, reader_.where());
    } else {
      reader_.read(f.key, *f.value);
    }
  }
  template <class S>
  void object(const char* key, S& nested) {
    const nlohmann::json* j = reader_.child(key);
    if (!j) return;
    FieldReader inner(*j, root_, path_.empty() ? key : path_ + "." + key);
    nested.fields(inner);
    inner.finish();
  }
  void finish() const { reader_.finish(); }

 private:
  JsonObjectReader reader_;
  std::string root_, path_;
};

// Visitor: the per-field checks, as "<where>: <dotted name> must be ..., got ...". A nested struct
// that has a validate(where) of its own (a config that also stands alone, like the model's) is
// checked by it, with "<where>: <key>" as its where, so its errors read the same either way.
class FieldChecker {
 public:
  explicit FieldChecker(std::string where, std::string prefix = "")
      : where_(std::move(where)), prefix_(std::move(prefix)) {}
  template <class T>
  void operator()(const Field<T>& f) const {
    const T& v = *f.value;
    if constexpr (detail::is_number_v<T>) {
      if (!f.range.contains(static_cast<double>(v)))
        fail_range(f, "", f.range.above_sanity(static_cast<double>(v)));
    } else if constexpr (detail::is_sequence<T>::value) {
      if constexpr (detail::is_number_v<typename T::value_type>)
        for (const auto& x : v)
          if (!f.range.contains(static_cast<double>(x)))
            fail_range(f, " entries", f.range.above_sanity(static_cast<double>(x)));
    } else if constexpr (std::is_same_v<T, std::string>) {
      bool ok = f.choices.empty();
      for (const auto& c : f.choices) ok = ok || c == v;
      if (!ok)
        throw Error(where_ + ": " + prefix_ + f.key + " must be " + quoted_alternatives(f.choices) +
                    ", got " + show(v));
    }
  }
  template <class S>
  void object(const char* key, S& nested) const {
    if constexpr (detail::has_validate<S>::value) {
      nested.validate(where_ + ": " + prefix_ + key);
    } else {
      FieldChecker inner(where_, prefix_ + key + ".");
      nested.fields(inner);
    }
  }

 private:
  template <class T>
  [[noreturn]] void fail_range(const Field<T>& f, const char* entries, bool too_large) const {
    Range upper;  // "<= 256": the sanity bound alone
    upper.hi = f.range.hi;
    const std::string rule =
        too_large ? upper.describe() + " (a sanity bound)"
                  : f.range.describe() +
                        (f.range_note ? std::string(" (") + f.range_note + ")" : std::string());
    throw Error(where_ + ": " + prefix_ + f.key + entries + " must be " + rule + ", got " +
                show(value_json(f)));
  }
  std::string where_, prefix_;
};

// fields() is one non-const member template so that one table serves the readers and the
// writers; the visitors used through a const struct below only read the members.
template <class S>
nlohmann::json to_json_fields(const S& s) {
  FieldWriter w;
  const_cast<S&>(s).fields(w);
  return w.take();
}

// Reads `json` (an object; every key optional) over `s`'s current values; unknown keys, wrong
// types and unknown enum names are errors naming `where`. Does not validate.
template <class S>
void read_fields(S& s, const nlohmann::json& json, const std::string& where) {
  FieldReader r(json, where);
  s.fields(r);
  r.finish();
}

// The per-field checks of the table (ranges, one-of), recursing into nested structs.
template <class S>
void check_fields(const S& s, const std::string& where) {
  FieldChecker c(where);
  const_cast<S&>(s).fields(c);
}

}  // namespace settings
}  // namespace vidfuse
