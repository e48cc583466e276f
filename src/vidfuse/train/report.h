// A self-contained HTML training report: learning curves, per-class accuracy and the confusion
// matrix as inline SVG (no scripts, no network), plus the summary numbers and the config.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "vidfuse/train/metrics.h"

namespace vidfuse::train {

struct ReportInputs {
  std::string title = "vidfuse training report";
  // The JSON-lines log records: {"type":"train","step","loss","acc","lr",...} and
  // {"type":"val","step","loss","top1","top5",...}.
  std::vector<nlohmann::json> log;
  std::optional<Metrics> metrics;  // final validation metrics (per-class, confusion)
  std::vector<std::string> class_names;
  nlohmann::json config;  // shown verbatim
};

std::string render_html_report(const ReportInputs& inputs);
// Writes render_html_report atomically.
void write_html_report(const std::string& path, const ReportInputs& inputs);

}  // namespace vidfuse::train
