#include "vidfuse/data/stream_inputs.h"

#include <algorithm>
#include <filesystem>

#include "vidfuse/core/error.h"
#include "vidfuse/data/extractor.h"
#include "vidfuse/io/frame_source.h"

namespace vidfuse::data {

StreamInputs load_stream_inputs(const std::string& path, const ExtractRecipe& opt, bool sem,
                                bool mot, const VideoAugment* augment, uint64_t seed) {
  StreamInputs in;
  const bool jitter = augment && augment->enabled;
  io::SampleRng rng(seed);
  try {
    std::error_code ec;  // a link loop or an overlong name: this video's failure, in words
    if (!std::filesystem::exists(path, ec))
      fail_file(path, ec ? "cannot reach the video file: " + ec.message()
                         : std::string("video file does not exist"));
    io::DecodeOptions decode;
    decode.threads = 1;  // parallelism comes from the callers' threads, one video each
    auto source = io::open_frame_source(path, decode);
    const io::FrameTable& table = source->frames();
    in.warnings = source->warnings();
    std::vector<std::string> notes;
    try {
      if (sem) {
        io::SamplingSpec spec = opt.semantic_sampling;
        if (jitter && augment->temporal_jitter) {
          spec.training = true;
          spec.seed = rng.next();
        }
        io::Sample s = io::sample_frames(spec, table.times, table.end_time);
        notes.insert(notes.end(), s.notes.begin(), s.notes.end());
        in.semantic_indices = std::move(s.indices);
      }
      if (mot)
        in.motion_indices =
            motion_indices(opt.motion_sampling, opt.motion_clip, table.times, table.end_time,
                           &notes, jitter && augment->temporal_jitter ? &rng : nullptr);
    } catch (const Error& e) {
      fail_file(path, e.what());
    }
    for (const auto& n : notes) in.warnings.push_back(path + ": " + n);
    std::vector<int64_t> unique(in.semantic_indices);
    unique.insert(unique.end(), in.motion_indices.begin(), in.motion_indices.end());
    std::sort(unique.begin(), unique.end());
    unique.erase(std::unique(unique.begin(), unique.end()), unique.end());
    torch::Tensor frames = source->read(unique, &in.warnings);  // [U,H,W,3]
    in.decoded_frames = static_cast<int64_t>(unique.size());
    in.crop = {0, 0, frames.size(1), frames.size(2)};
    if (jitter) {
      in.crop = io::random_resized_crop_box(frames.size(1), frames.size(2), rng,
                                            {augment->scale[0], augment->scale[1]},
                                            {augment->ratio[0], augment->ratio[1]});
      in.flipped = augment->hflip && rng.uniform_int(2) == 1;
      // Cropped (and flipped) while still uint8: a quarter of the bytes to move.
      frames = frames.narrow(1, in.crop.top, in.crop.height).narrow(2, in.crop.left, in.crop.width);
      if (in.flipped) frames = frames.flip({2});
      frames = frames.contiguous();
    }
    auto rows = [&](const std::vector<int64_t>& idx) {
      std::vector<int64_t> r;
      r.reserve(idx.size());
      for (int64_t f : idx)
        r.push_back(std::lower_bound(unique.begin(), unique.end(), f) - unique.begin());
      return torch::tensor(r, torch::kLong);
    };
    auto times = [&](const std::vector<int64_t>& idx) {
      std::vector<double> t;
      t.reserve(idx.size());
      for (int64_t f : idx) t.push_back(table.times[f]);
      return t;
    };
    if (sem) {
      in.semantic = io::dinov3_transform(frames.index_select(0, rows(in.semantic_indices)),
                                         opt.semantic_size, opt.semantic_size);
      in.semantic_times = times(in.semantic_indices);
    }
    if (mot) {
      in.motion = io::i3d_transform(frames.index_select(0, rows(in.motion_indices)),
                                    opt.motion_short_side, opt.motion_crop);
      in.motion_times = times(in.motion_indices);
    }
  } catch (const Error& e) {
    const std::string m = e.what();
    if (m.find(path) != std::string::npos) throw;
    throw Error(path + ": " + m);
  }
  return in;
}

}  // namespace vidfuse::data
