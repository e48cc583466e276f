// Opens what a TrainConfig's `data` section names (manifests + feature store) as the datasets the
// Trainer consumes, and sizes the model's inputs from them, so a config never has to repeat what
// the data already say (feature widths, token grids, number of classes).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "vidfuse/train/dataset.h"
#include "vidfuse/train/train_config.h"

namespace vidfuse::train {

struct TrainData {
  std::shared_ptr<const Dataset> train;  // null when data.train is empty
  std::shared_ptr<const Dataset> val;    // null when data.val is empty
  std::vector<std::string> class_names;
  std::vector<std::string> notes;  // e.g. "120 of 5000 train videos are not in the store"
};

// Which streams an architecture reads: both | semantic | motion.
std::string streams_for(models::FusionArch arch, const std::string& requested);

// Throws vidfuse::Error naming the manifest or store when they cannot be read or hold no videos.
TrainData open_train_data(const DataConfig& data, models::FusionArch arch);

// Sets the model's input widths and grids from the dataset's first sample, and num_classes from
// the class names (or the largest label + 1 when the manifest has none).
void fit_model_to_data(models::FusionConfig& model, const Dataset& data,
                       const std::vector<std::string>& class_names);

}  // namespace vidfuse::train
