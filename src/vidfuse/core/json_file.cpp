#include "vidfuse/core/json_file.h"

#include <fstream>

#include "vidfuse/core/error.h"

namespace vidfuse {

nlohmann::json read_json_file(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) fail_file(path, "cannot open the " + what);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    fail_file(path, std::string("not valid JSON: ") + e.what());
  }
}

}  // namespace vidfuse
