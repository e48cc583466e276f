// The feature store's schema: which tensors a video's file holds, per stream, under which names.
// The extractor writes these names, the store verifies them, the datasets read them, and a test
// checks the README's table against stream_tensors(): a name changes here and nowhere else.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vidfuse::data {

// semantic: DINOv3 on sampled frames; motion: I3D on RGB clips; flow: I3D on optical flow.
enum class Stream { Semantic, Motion, Flow };
inline constexpr Stream kAllStreams[] = {Stream::Semantic, Stream::Motion, Stream::Flow};

const std::string& stream_name(Stream s);  // "semantic", "motion", "flow"
// The inverse; throws vidfuse::Error naming the choices.
Stream parse_stream(const std::string& name);

// Tensor names. The two I3D streams (motion, flow) share one layout under their own prefix.
inline const std::string kSemanticCls = "semantic.cls";      // [T,C]
inline const std::string kSemanticPatch = "semantic.patch";  // [T,h,w,C], pooled by --pool
std::string semantic_layer_tensor(int64_t layer);            // "semantic.layer_<L>" [T,h,w,C]
std::string mixed_5c_tensor(Stream i3d_stream);              // "<s>.mixed_5c" [1024,T',H',W']
std::string features_tensor(Stream i3d_stream);              // "<s>.features" [1024]
std::string times_tensor(Stream s);                          // "<s>.times" [T] f64 seconds
bool is_times_tensor(const std::string& name);  // stored in float64, not the store dtype
// A per-stream metadata key: "<stream>.<field>" (model, weights, weights_hash, sampling, ...).
std::string stream_metadata_key(Stream s, const std::string& field);

struct StoreTensor {
  std::string name, shape;
};
// Every tensor a complete file of stream `s` holds, with its shape, in a fixed order.
std::vector<StoreTensor> stream_tensors(Stream s);

}  // namespace vidfuse::data
