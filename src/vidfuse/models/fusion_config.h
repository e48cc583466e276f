// Configuration of the fusion classifier (and of its baselines), with a strict JSON round trip:
// unknown keys, wrong types and inconsistent values are errors that name the config and the field.
#pragma once
#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "vidfuse/core/settings.h"

namespace vidfuse::models {

// Which network FusionModel builds. All share the token embeddings and the attentive pooler so the
// comparison between them is about fusion alone.
//  - fusion:   cross-attention layers between the streams, then one pooler per stream (or one over
//              all fused tokens with joint_pool), pooled features concatenated
//  - semantic: attentive probe on the semantic tokens only
//  - motion:   attentive probe on the motion tokens only
//  - late:     one probe per stream, pooled features concatenated before the classifier
enum class FusionArch { kFusion, kSemantic, kMotion, kLate };
inline constexpr std::array<FusionArch, 4> kFusionArchs{FusionArch::kFusion, FusionArch::kSemantic,
                                                        FusionArch::kMotion, FusionArch::kLate};

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
  bool use_cls = true;
  int64_t semantic_pool = 2;
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
  bool bidirectional = true;

  // Attentive pooling and head.
  int64_t pool_queries = 4;
  // Off by default: measured on the demo's composite task, a joint pooler learns to read one
  // stream and ignores the other (held-out top-1 below either single stream), while per-stream
  // poolers keep both and leave the mixing to the cross-attention layers.
  bool joint_pool = false;
  double dropout = 0.1;
  double attn_dropout = 0.0;
  double head_dropout = 0.0;
  int64_t num_classes = 174;
  double layer_norm_eps = 1e-6;

  // The field table (core/settings.h): JSON keys, help, flags and per-field checks.
  template <class V>
  void fields(V& v) {
    using settings::field;
    v(field("arch", arch, "Network").named(kFusionArchs, arch_name).flag("--arch"));
    v(field("semantic_dim", semantic_dim, "Semantic feature channels").positive().at_most(65536));
    v(field("motion_dim", motion_dim, "Motion feature channels").positive().at_most(65536));
    v(field("semantic_grid", semantic_grid, "Semantic grid the position tables are sized for")
          .positive()
          .at_most(4096));
    v(field("motion_grid", motion_grid, "Motion grid the position tables are sized for")
          .positive()
          .at_most(4096));
    v(field("use_cls", use_cls, "Add one CLS token per frame to the semantic tokens if present"));
    v(field("semantic_pool", semantic_pool, "k x k average pooling of the patch grid")
          .at_least(1)
          .at_most(64)
          .note("1 = no pooling"));
    v(field("standardize_inputs", standardize_inputs,
            "Standardise input channels with the training set's statistics"));
    v(field("width", width, "Fusion width").flag("--width").positive().at_most(65536));
    v(field("depth", depth, "Cross-attention layers").flag("--depth").at_least(0).at_most(256));
    v(field("heads", heads, "Attention heads").positive().at_most(1024));
    v(field("mlp_ratio", mlp_ratio, "Feed-forward width / width").positive().at_most(64));
    v(field("bidirectional", bidirectional, "Motion tokens also attend to semantic tokens"));
    v(field("pool_queries", pool_queries, "Queries of each attentive pooler")
          .at_least(1)
          .at_most(4096));
    v(field("joint_pool", joint_pool,
            "fusion arch: one pooler over all fused tokens instead of one per stream"));
    v(field("dropout", dropout, "On residual branches and inside the feed-forward blocks")
          .in(0, 1));
    v(field("attn_dropout", attn_dropout, "On attention probabilities").in(0, 1));
    v(field("head_dropout", head_dropout, "Before the classifier").in(0, 1));
    v(field("num_classes", num_classes, "Classes").at_least(2).at_most(1 << 20));
    v(field("layer_norm_eps", layer_norm_eps, "LayerNorm epsilon").positive().at_most(1));
  }

  // Throws vidfuse::Error("<where>: ...") naming the first inconsistent field.
  void validate(const std::string& where = "fusion config") const;
};

// Semantic patch grid after `semantic_pool` (ceil division: partial windows are averaged).
std::array<int64_t, 3> pooled_semantic_grid(const FusionConfig& config,
                                            const std::array<int64_t, 3>& grid);

nlohmann::json to_json(const FusionConfig& config);
// Every key is optional (defaults above); unknown keys and wrong types are errors.
FusionConfig fusion_config_from_json(const nlohmann::json& json, const std::string& where);

}  // namespace vidfuse::models
