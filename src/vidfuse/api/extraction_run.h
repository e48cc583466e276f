// The one extraction pipeline behind `vidfuse extract` and vidfuse::extract(): models loaded on
// the device, extract_features over the manifest, the recipe saved for predict. Internal: the
// command passes the parsed recipe and run directly; the public API converts its options first.
#pragma once
#include <string>

#include "vidfuse/data/extract_recipe.h"
#include "vidfuse/data/extractor.h"
#include "vidfuse/data/manifest.h"

namespace vidfuse::api {

struct ExtractionResult {
  data::ExtractSummary summary;
  std::string device;
};

// `device` is resolved here (announced on the run's log); `compute` is fp32 or bf16.
ExtractionResult run_extraction(const data::Manifest& manifest, const data::ExtractRecipe& recipe,
                                const data::ExtractRun& run, const std::string& device,
                                const std::string& compute);

}  // namespace vidfuse::api
