// Vision Transformer (Dosovitskiy et al. 2021) for image classification: patch-embedding
// convolution, a class token, learned position embeddings, pre-norm transformer blocks
// (models/transformer.h), a final LayerNorm and a linear head on the class token. With
// Sparsity::Pixelfly the MLP fc1/fc2 of every block become PixelflyLinear layers, and with
// sparsify_attention also the attention projections qkv/proj, each type at its own density
// (spec/pixelfly.md section 4); everything else stays dense.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <string>
#include <vector>

#include "pixelfly/models/sparsity.h"
#include "pixelfly/models/transformer.h"
#include "pixelfly/nn/sparsify.h"
#include "pixelfly/pattern/budget_planner.h"

namespace pixelfly::models {

struct VitOptions {
  int64_t image_size = 28;
  int64_t in_channels = 1;
  int64_t patch_size = 4;  // must divide image_size
  int64_t dim = 128;
  int64_t depth = 4;
  int64_t heads = 4;  // must divide dim
  int64_t mlp_dim = 512;
  bool qkv_bias = true;
  int64_t classes = 10;
  Sparsity sparsity = Sparsity::Dense;
  double mlp_density = 0.25;        // target total density of each MLP layer (pixelfly)
  double low_rank_share = 0.2;      // of each budget, for the low-rank term
  bool sparsify_attention = false;  // also qkv and proj
  double attention_density = 0.25;  // their target total density
  std::vector<int64_t> block_sizes = {32, 64, 128};  // the planner's choices (see MixerOptions)
};

// Presets:
//   "vit-s16":     ViT-S as in the paper (timm's original "small"): 224 x 224 RGB, patch 16,
//                  dim 768, depth 8, 8 heads, MLP 2304 (ratio 3), no qkv bias, 1000 classes;
//                  48,754,408 parameters dense.
//   "vit-b16":     ViT-B/16: as above with depth 12, 12 heads, MLP 3072, qkv bias; 86,567,656.
//   "vit-small28": 28 x 28 grey, patch 4, dim 128, depth 4, 4 heads, MLP 512, 10 classes,
//                  block sizes {8, 16, 32}: trains on a CPU.
// Throws c10::Error for an unknown name, listing the known ones.
VitOptions vit_preset(const std::string& name);
std::vector<std::string> vit_preset_names();

class VitImpl : public torch::nn::Module {
 public:
  // Builds the dense model, then (Sparsity::Pixelfly) sparsifies it with nn::sparsify. Throws
  // c10::Error for inconsistent sizes or a budget the planner rejects.
  explicit VitImpl(VitOptions options);
  // images: (batch, in_channels, image_size, image_size) float -> logits (batch, classes).
  // Throws c10::Error for another shape.
  at::Tensor forward(const at::Tensor& images);

  // Every block's qkv, proj (type "attention") and fc1, fc2 (type "mlp"), named
  // "blocks.<i>.attn.qkv", "blocks.<i>.mlp.fc1", ...
  std::vector<nn::LinearSlot> linear_slots();
  // The planner's choice per sparsified layer (empty for a dense model).
  const std::vector<LayerPlan>& plans() const { return plans_; }
  const VitOptions& options() const { return options_; }

  torch::nn::Conv2d patch_embed{nullptr};
  at::Tensor cls_token;  // (1, 1, dim)
  at::Tensor pos_embed;  // (1, 1 + patches, dim)
  torch::nn::ModuleList block_list{nullptr};  // registered as "blocks"
  std::vector<TransformerBlock> blocks;       // the same modules, typed
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear head{nullptr};

 private:
  VitOptions options_;
  std::vector<LayerPlan> plans_;
};
TORCH_MODULE(Vit);

}  // namespace pixelfly::models
