// Opens what a TrainConfig's `data` section names (manifests + feature store) as the datasets the
// Trainer consumes, and sizes the model's inputs from them, so a config never has to repeat what
// the data already say (feature widths, token grids, number of classes).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vidfuse/data/dataset.h"
#include "vidfuse/data/extract_recipe.h"
#include "vidfuse/train/train_config.h"

namespace vidfuse::train {

struct TrainData {
  std::shared_ptr<const data::Dataset> train;  // null when data.train is empty
  std::shared_ptr<const data::Dataset> val;    // null when data.val is empty
  std::vector<std::string> class_names;
  std::vector<std::string> notes;  // e.g. "120 of 5000 train videos are not in the store"
  // source "videos": the extraction settings in force (every key resolved), to save with a model.
  std::optional<data::ExtractRecipe> extract;
};

// Which streams an architecture reads: both | semantic | motion.
std::string streams_for(models::FusionArch arch, const std::string& requested);

// data.extract over <data.store>/extract.json (when data.store has one) over the extractor's
// defaults. Throws vidfuse::Error naming the key or file that is wrong.
data::ExtractRecipe video_extract_recipe(const DataConfig& data);

// Throws vidfuse::Error naming the manifest or store when they cannot be read or hold no videos.
// source "videos": the backbones are built (from data.extract's specs) on `device`, and the train
// split augments with draws seeded by `seed`.
TrainData open_train_data(const DataConfig& data, models::FusionArch arch, int64_t seed = 0,
                          const std::string& device = "cpu");

// Sets the model's input widths and grids from the dataset's first sample, and num_classes from
// the class names (or the largest label + 1 when the manifest has none).
void fit_model_to_data(models::FusionConfig& model, const data::Dataset& data,
                       const std::vector<std::string>& class_names);

// Sets the model's per-channel input standardisation (see FusionConfig::standardize_inputs) from
// up to `max_samples` samples spread evenly over `data`: mean and std over every token of every
// sample (semantic CLS tokens count with the patches; they share the projection). A channel whose
// std is below 1% of the stream's RMS std gets that floor, so a channel that happened to be
// constant in training (a dead ReLU) cannot blow up at test time.
void fit_input_statistics(models::FusionModelImpl& model, const data::Dataset& data,
                          int64_t max_samples = 256);

}  // namespace vidfuse::train
