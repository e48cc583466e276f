#include "vidfuse/train/train_config.h"

#include "vidfuse/core/error.h"
#include "vidfuse/core/json_file.h"

namespace vidfuse::train {

// The ranges and allowed values of single fields are in the field tables (train_config.h,
// fusion_config.h, augment.h); these involve two fields or more than a range.
void TrainConfig::validate(const std::string& where) const {
  settings::check_fields(*this, where);
  auto require = [&](bool ok, const std::string& what) {
    if (!ok) throw Error(where + ": " + what);
  };
  require(epochs >= 1 || max_steps > 0, "epochs must be >= 1 (or set max_steps)");
  require(min_lr >= 0 && min_lr <= lr, "min_lr must be in [0, lr]");
  if (device != "auto") {
    try {
      torch::Device d(device);
      (void)d;
    } catch (const c10::Error&) {
      throw Error(where + ": device " + settings::show(device) +
                  " is not a device (use \"auto\", \"cpu\" or \"cuda[:N]\")");
    }
  }
  require(data.extract.is_object(), "data.extract must be a JSON object (extract.json keys)");
  const auto& a = data.augment;
  require(a.scale[0] > 0 && a.scale[0] <= a.scale[1] && a.scale[1] <= 1,
          "data.augment.scale must be an increasing range in (0, 1]");
  require(a.ratio[0] > 0 && a.ratio[0] <= a.ratio[1],
          "data.augment.ratio must be an increasing positive range");
  require(resume.empty() || !output_dir.empty() || resume != "auto",
          "resume \"auto\" needs an output_dir");
}

nlohmann::json to_json(const TrainConfig& c) { return settings::to_json_fields(c); }

TrainConfig train_config_from_json(const nlohmann::json& json, const std::string& where) {
  TrainConfig c;
  settings::read_fields(c, json, where);
  c.validate(where);
  return c;
}

TrainConfig load_train_config(const std::string& path) {
  return train_config_from_json(read_json_file(path, "config file"), path);
}

}  // namespace vidfuse::train
