#include "vidfuse/core/json_file.h"

#include <fstream>
#include <iterator>

#include "vidfuse/core/error.h"

namespace vidfuse {

namespace {

// One pass over the text, counting open brackets outside strings. Malformed text is left for the
// parser to describe; only the depth is judged here.
void check_depth(std::string_view text, const std::string& where) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // the escaped character cannot end the string
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        fail_file(where, "JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                             " levels (at byte " + std::to_string(i) +
                             "); no real file nests so deep");
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
}

}  // namespace

nlohmann::json parse_json_text(std::string_view text, const std::string& where) {
  check_depth(text, where);
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    // nlohmann quotes the token it stopped at, which may be a megabyte-long string.
    std::string what = e.what();
    if (what.size() > 300) what = what.substr(0, 300) + "…";
    fail_file(where, "not valid JSON: " + what);
  }
}

nlohmann::json read_json_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_file(path, "cannot open the " + what);
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) fail_file(path, "cannot read the " + what);
  return parse_json_text(text, path);
}

}  // namespace vidfuse
