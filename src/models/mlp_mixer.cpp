// MLP-Mixer with optional Pixelfly channel-mixing layers.
#include "pixelfly/models/mlp_mixer.h"

#include <ATen/ATen.h>
#include <torch/nn/functional/activation.h>

namespace pixelfly::models {

MixerBlockImpl::MixerBlockImpl(int64_t tokens, const MixerOptions& o) {
  token_norm = register_module("token_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})));
  token_fc1 = register_module("token_fc1", torch::nn::Linear(tokens, o.token_mlp_dim));
  token_fc2 = register_module("token_fc2", torch::nn::Linear(o.token_mlp_dim, tokens));
  channel_norm = register_module("channel_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})));
  channel_fc1 = torch::nn::AnyModule(torch::nn::Linear(o.dim, o.channel_mlp_dim));
  channel_fc2 = torch::nn::AnyModule(torch::nn::Linear(o.channel_mlp_dim, o.dim));
  register_module("channel_fc1", channel_fc1.ptr());
  register_module("channel_fc2", channel_fc2.ptr());
}

at::Tensor MixerBlockImpl::forward(const at::Tensor& x) {
  namespace F = torch::nn::functional;
  // Token mixing acts along the token axis.
  at::Tensor t = token_norm(x).transpose(1, 2);
  t = token_fc2(F::gelu(token_fc1(t))).transpose(1, 2);
  const at::Tensor y = x + t;
  at::Tensor c = channel_fc1.forward(channel_norm(y));
  c = channel_fc2.forward(F::gelu(c));
  return y + c;
}

MlpMixerImpl::MlpMixerImpl(MixerOptions o) : options_(std::move(o)) {
  const MixerOptions& op = options_;
  TORCH_CHECK(op.patch_size > 0 && op.image_size % op.patch_size == 0, "MLP-Mixer: patch_size ", op.patch_size,
              " must divide image_size ", op.image_size);
  TORCH_CHECK(op.depth >= 1 && op.dim >= 1 && op.classes >= 2, "MLP-Mixer: depth, dim must be >= 1 and classes >= 2");
  const int64_t side = op.image_size / op.patch_size, tokens = side * side;
  patch_embed = register_module(
      "patch_embed", torch::nn::Conv2d(torch::nn::Conv2dOptions(op.in_channels, op.dim, op.patch_size).stride(op.patch_size)));
  block_list = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < op.depth; ++i) {
    blocks.push_back(MixerBlock(tokens, op));
    block_list->push_back(blocks.back());
  }
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({op.dim})));
  head = register_module("head", torch::nn::Linear(op.dim, op.classes));
  if (op.sparsity == Sparsity::Pixelfly) {
    PlannerOptions planner;
    planner.density_by_type = {{"mlp", op.mlp_density}};
    planner.low_rank_share = op.low_rank_share;
    planner.block_sizes = op.block_sizes;
    plans_ = nn::sparsify(*this, linear_slots(), planner);
  }
}

std::vector<nn::LinearSlot> MlpMixerImpl::linear_slots() {
  std::vector<nn::LinearSlot> slots;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const std::string prefix = "blocks." + std::to_string(i) + ".channel_";
    slots.push_back({prefix + "fc1", "mlp", &blocks[i]->channel_fc1});
    slots.push_back({prefix + "fc2", "mlp", &blocks[i]->channel_fc2});
  }
  return slots;
}

std::vector<LayerShape> mixer_sparsifiable_layers(const MixerOptions& o) {
  std::vector<LayerShape> layers;
  for (int64_t i = 0; i < o.depth; ++i) {
    const std::string prefix = "blocks." + std::to_string(i) + ".channel_";
    layers.push_back({prefix + "fc1", "mlp", o.channel_mlp_dim, o.dim});
    layers.push_back({prefix + "fc2", "mlp", o.dim, o.channel_mlp_dim});
  }
  return layers;
}

std::vector<std::string> mixer_preset_names() { return {"mixer-s16", "mixer-b16", "mixer-small28"}; }

MixerOptions mixer_preset(const std::string& name) {
  MixerOptions o;
  if (name == "mixer-s16" || name == "mixer-b16") {
    o.image_size = 224;
    o.in_channels = 3;
    o.patch_size = 16;
    o.classes = 1000;
    const bool base = name == "mixer-b16";
    o.dim = base ? 768 : 512;
    o.depth = base ? 12 : 8;
    o.token_mlp_dim = base ? 384 : 256;
    o.channel_mlp_dim = base ? 3072 : 2048;
    return o;
  }
  if (name == "mixer-small28") {
    // The defaults (28 x 28 grey, dim 128, depth 4, channel MLP 512) with 7 x 7 patches: 16
    // tokens, so that a CPU trains it to ~88 % on Fashion-MNIST in a few minutes.
    o.patch_size = 7;
    o.token_mlp_dim = 32;
    o.block_sizes = {16, 32};
    return o;
  }
  std::string known;
  for (const std::string& n : mixer_preset_names()) known += (known.empty() ? "" : ", ") + n;
  TORCH_CHECK(false, "unknown model preset '", name, "'; known: ", known);
}

at::Tensor MlpMixerImpl::forward(const at::Tensor& images) {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == options_.in_channels && images.size(2) == options_.image_size &&
                  images.size(3) == options_.image_size,
              "MLP-Mixer: images must be (batch, ", options_.in_channels, ", ", options_.image_size, ", ",
              options_.image_size, "), got ", images.sizes());
  at::Tensor x = patch_embed(images).flatten(2).transpose(1, 2);  // (batch, tokens, dim)
  for (auto& block : blocks) x = block(x);
  return head(norm(x).mean(1));
}

}  // namespace pixelfly::models
