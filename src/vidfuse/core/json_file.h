// Reading a JSON file with the project's error form: every failure names the file.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace vidfuse {

// Parses the file at `path`; throws Error("<path>: cannot open the <what>" | "<path>: not valid
// JSON: ...") so callers need no try/catch of their own.
nlohmann::json read_json_file(const std::string& path, const std::string& what = "file");

}  // namespace vidfuse
