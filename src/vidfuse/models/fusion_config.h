// Configuration of the fusion classifier (and of its baselines), with a strict JSON round trip:
// unknown keys, wrong types and inconsistent values are errors that name the config and the field.
#pragma once
#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

namespace vidfuse::models {

// Which network FusionModel builds. All share the token embeddings and the attentive pooler so the
// comparison between them is about fusion alone.
//  - fusion:   cross-attention layers between the streams, then one pooler per stream (or one over
//              all fused tokens with joint_pool), pooled features concatenated
//  - semantic: attentive probe on the semantic tokens only
//  - motion:   attentive probe on the motion tokens only
//  - late:     one probe per stream, pooled features concatenated before the classifier
enum class FusionArch { kFusion, kSemantic, kMotion, kLate };

std::string arch_name(FusionArch arch);
FusionArch arch_from_name(const std::string& name, const std::string& where);

struct FusionConfig {
  FusionArch arch = FusionArch::kFusion;

  // Inputs. The grids are those the position tables are sized for; other grids are accepted and
  // the tables interpolated.
  int64_t semantic_dim = 768;                        // DINOv3 ViT-B/16 width
  int64_t motion_dim = 1024;                         // I3D Mixed_5c channels
  std::array<int64_t, 3> semantic_grid{16, 14, 14};  // frames, patch rows, patch cols
  std::array<int64_t, 3> motion_grid{8, 7, 7};       // Mixed_5c time, rows, cols
  bool use_cls = true;        // add one CLS token per frame to the semantic tokens when present
  int64_t semantic_pool = 2;  // k x k average pooling of the patch grid before projection (1 = off)
  // Standardise each input channel with the training set's mean and std (kept in the checkpoint
  // as *_embed.input_mean / input_std). Frozen-backbone features often carry a large offset shared
  // by every video (measured: the built-in I3D's per-channel mean² is 5x its across-video
  // variance), which the projection + LayerNorm would otherwise pass on as a near-constant token.
  bool standardize_inputs = true;

  // Fusion trunk.
  int64_t width = 512;
  int64_t depth = 2;
  int64_t heads = 8;
  double mlp_ratio = 4.0;
  bool bidirectional = true;  // motion tokens also attend to semantic tokens

  // Attentive pooling and head.
  int64_t pool_queries = 4;
  // fusion arch only: one pooler over the concatenated fused streams instead of one per stream.
  // Off by default: measured on the demo's composite task, a joint pooler learns to read one
  // stream and ignores the other (held-out top-1 below either single stream), while per-stream
  // poolers keep both and leave the mixing to the cross-attention layers.
  bool joint_pool = false;
  double dropout = 0.1;       // on residual branches and inside the feed-forward blocks
  double attn_dropout = 0.0;  // on attention probabilities
  double head_dropout = 0.0;  // before the classifier
  int64_t num_classes = 174;
  double layer_norm_eps = 1e-6;

  // Throws vidfuse::Error("<where>: ...") naming the first inconsistent field.
  void validate(const std::string& where = "fusion config") const;
};

// Semantic patch grid after `semantic_pool` (ceil division: partial windows are averaged).
std::array<int64_t, 3> pooled_semantic_grid(const FusionConfig& config,
                                            const std::array<int64_t, 3>& grid);

nlohmann::json to_json(const FusionConfig& config);
// Every key is optional (defaults above); unknown keys and wrong types are errors.
FusionConfig fusion_config_from_json(const nlohmann::json& json, const std::string& where);

// Strict reader of a JSON object into a config struct, shared by the config types.
class JsonObjectReader {
 public:
  JsonObjectReader(const nlohmann::json& json, std::string where);
  void read(const char* key, int64_t& out);
  void read(const char* key, double& out);
  void read(const char* key, bool& out);
  void read(const char* key, std::string& out);
  void read(const char* key, std::array<int64_t, 3>& out);
  void read(const char* key, std::array<double, 2>& out);
  // The member (marked as known), or nullptr when absent.
  const nlohmann::json* child(const char* key);
  // Throws if the object has keys no read()/child() asked for.
  void finish() const;
  const std::string& where() const { return where_; }

 private:
  const nlohmann::json* take(const char* key);
  [[noreturn]] void fail_type(const char* key, const char* expected) const;
  const nlohmann::json& json_;
  std::string where_;
  std::set<std::string> known_;
};

}  // namespace vidfuse::models
