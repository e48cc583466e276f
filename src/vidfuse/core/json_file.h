// Reading JSON from files with the project's error form: every failure names the file, and no
// input can exhaust the stack (nesting is bounded before the recursive parts of nlohmann::json,
// such as copies and dump(), ever see the value).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace vidfuse {

// Deeper than any real config, header or manifest (they nest < 10 levels); 100k levels of '['
// overflowed the stack.
inline constexpr size_t kMaxJsonDepth = 256;

// Parses `text` read from `where` (a file, or "<file>: metadata 'config'"); throws
// Error("<where>: not valid JSON: ...") or Error("<where>: JSON nested deeper than 256 levels
// ...").
nlohmann::json parse_json_text(std::string_view text, const std::string& where);

// Parses the file at `path`; throws Error("<path>: cannot open the <what>" | "<path>: not valid
// JSON: ..." | "<path>: JSON nested deeper ...") so callers need no try/catch of their own.
nlohmann::json read_json_file(const std::string& path, const std::string& what = "file");

}  // namespace vidfuse
