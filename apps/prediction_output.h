// How `predict` and `i3d-predict` show one video's top-k classes: a JSON object per line
// ({"video", "top": [{"class", "name", "score"}]} or {"video", "error"}), or the path followed by
// one "  12.34%  name" line per class; a failure goes to stderr.
#pragma once
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vidfuse/api/motion_extractor.h"  // ClassScore

namespace vidfuse::cli {

inline void print_prediction(const std::string& video, const std::vector<ClassScore>& top,
                             const std::string& error, bool json) {
  if (json) {
    nlohmann::json out = {{"video", video}};
    if (!error.empty()) {
      out["error"] = error;
    } else {
      out["top"] = nlohmann::json::array();
      for (const ClassScore& c : top)
        out["top"].push_back({{"class", c.index}, {"name", c.name}, {"score", c.score}});
    }
    std::cout << out.dump() << "\n";
  } else if (!error.empty()) {
    std::cerr << "vidfuse: error: " << error << "\n";
  } else {
    std::printf("%s\n", video.c_str());
    for (const ClassScore& c : top) std::printf("  %6.2f%%  %s\n", 100 * c.score, c.name.c_str());
  }
}

}  // namespace vidfuse::cli
