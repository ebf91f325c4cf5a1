// MLP-Mixer (Tolstikhin et al. 2021) for image classification, with the channel-mixing MLPs
// optionally Pixelated Butterfly layers (spec/pixelfly.md section 4: the token-mixing MLPs,
// patch embedding, norms and head stay dense). Per-layer flat butterfly and rank come from the
// budget planner and applied by nn::sparsify to the dense model.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <string>
#include <vector>

#include "pixelfly/models/sparsity.h"
#include "pixelfly/nn/sparsify.h"
#include "pixelfly/pattern/budget_planner.h"

namespace pixelfly::models {

struct MixerOptions {
  int64_t image_size = 28;
  int64_t in_channels = 1;
  int64_t patch_size = 4;
  int64_t dim = 128;            // channels per token
  int64_t depth = 4;
  int64_t token_mlp_dim = 64;
  int64_t channel_mlp_dim = 512;
  int64_t classes = 10;
  Sparsity sparsity = Sparsity::Dense;
  double mlp_density = 0.25;    // target total density of each channel-mixing layer (pixelfly)
  double low_rank_share = 0.2;  // of that budget, for the low-rank term
  // Block sizes the planner may use. A layer reaches at most n = (its blocks per side) butterfly
  // cells, so narrow layers need small blocks to get down to low densities (the CPU-sized preset
  // sets 16 and 32). The default starts at 32, the paper's released block and where the Hopper
  // kernels run fastest: block 16 runs Y at 0.66x of dense where block 32 runs it at 1.2x
  // (docs/perf.md, "Version 8").
  std::vector<int64_t> block_sizes = {32, 64, 128};
};

// Presets: "mixer-s16" and "mixer-b16" as in the paper (224 x 224 RGB, patch 16, 1000 classes),
// "mixer-small28" for 28 x 28 grey images on a CPU. Throws c10::Error for an unknown name,
// listing the known ones.
MixerOptions mixer_preset(const std::string& name);
std::vector<std::string> mixer_preset_names();

// The channel-mixing layers a model with these options has (names as in named_parameters()).
std::vector<LayerShape> mixer_sparsifiable_layers(const MixerOptions& options);

class MixerBlockImpl : public torch::nn::Module {
 public:
  MixerBlockImpl(int64_t tokens, const MixerOptions& options);
  // x: (batch, tokens, dim) -> same shape.
  at::Tensor forward(const at::Tensor& x);

  torch::nn::LayerNorm token_norm{nullptr}, channel_norm{nullptr};
  torch::nn::Linear token_fc1{nullptr}, token_fc2{nullptr};
  torch::nn::AnyModule channel_fc1, channel_fc2;  // dense Linear or, once sparsified, PixelflyLinear
};
TORCH_MODULE(MixerBlock);

class MlpMixerImpl : public torch::nn::Module {
 public:
  // Builds the dense model, then (Sparsity::Pixelfly) replaces the channel-mixing layers through
  // nn::sparsify. Throws c10::Error for inconsistent sizes or a budget the planner rejects.
  explicit MlpMixerImpl(MixerOptions options);
  // images: (batch, in_channels, image_size, image_size) -> logits (batch, classes).
  at::Tensor forward(const at::Tensor& images);

  // The planner's choice per channel-mixing layer (empty for a dense model).
  const std::vector<LayerPlan>& plans() const { return plans_; }
  const MixerOptions& options() const { return options_; }
  // The channel-mixing layers, type "mlp", named "blocks.<i>.channel_fc1" / "..._fc2".
  std::vector<nn::LinearSlot> linear_slots();

  torch::nn::Conv2d patch_embed{nullptr};
  torch::nn::ModuleList block_list{nullptr};  // registered as "blocks"
  std::vector<MixerBlock> blocks;             // the same modules, typed
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear head{nullptr};

 private:
  MixerOptions options_;
  std::vector<LayerPlan> plans_;
};
TORCH_MODULE(MlpMixer);

}  // namespace pixelfly::models
