// Vision Transformer with optional Pixelfly MLP (and attention projection) layers.
#include "pixelfly/models/vit.h"

#include <ATen/ATen.h>

namespace pixelfly::models {

VitImpl::VitImpl(VitOptions o) : options_(std::move(o)) {
  const VitOptions& op = options_;
  TORCH_CHECK(op.patch_size > 0 && op.image_size > 0 && op.image_size % op.patch_size == 0, "ViT: patch_size ",
              op.patch_size, " must divide image_size ", op.image_size);
  TORCH_CHECK(op.in_channels >= 1 && op.depth >= 1 && op.classes >= 2,
              "ViT: in_channels and depth must be >= 1 and classes >= 2, got ", op.in_channels, ", ", op.depth, ", ",
              op.classes);
  const int64_t side = op.image_size / op.patch_size;
  TransformerBlockOptions block;
  block.dim = op.dim;
  block.heads = op.heads;
  block.mlp_dim = op.mlp_dim;
  block.qkv_bias = op.qkv_bias;
  block.norm_eps = 1e-6;
  // Blocks first: they check dim and heads before any tensor of size dim is made.
  std::vector<TransformerBlock> built;
  for (int64_t i = 0; i < op.depth; ++i) built.push_back(TransformerBlock(block));
  patch_embed = register_module(
      "patch_embed", torch::nn::Conv2d(torch::nn::Conv2dOptions(op.in_channels, op.dim, op.patch_size).stride(op.patch_size)));
  cls_token = register_parameter("cls_token", at::randn({1, 1, op.dim}) * 0.02);
  pos_embed = register_parameter("pos_embed", at::randn({1, 1 + side * side, op.dim}) * 0.02);
  block_list = register_module("blocks", torch::nn::ModuleList());
  for (const TransformerBlock& b : built) {
    blocks.push_back(b);
    block_list->push_back(b);
  }
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({op.dim}).eps(1e-6)));
  head = register_module("head", torch::nn::Linear(op.dim, op.classes));
  if (op.sparsity == Sparsity::Pixelfly) {
    plans_ = sparsify_transformer(*this, blocks, op.mlp_density, op.sparsify_attention, op.attention_density,
                                  op.low_rank_share, op.block_sizes);
  }
}

std::vector<nn::LinearSlot> VitImpl::linear_slots() { return block_stack_slots(blocks); }

at::Tensor VitImpl::forward(const at::Tensor& images) {
  const VitOptions& op = options_;
  TORCH_CHECK(images.dim() == 4 && images.size(1) == op.in_channels && images.size(2) == op.image_size &&
                  images.size(3) == op.image_size,
              "ViT: images must be (batch, ", op.in_channels, ", ", op.image_size, ", ", op.image_size, "), got ",
              images.sizes());
  const at::Tensor patches = patch_embed(images).flatten(2).transpose(1, 2);  // (batch, patches, dim)
  at::Tensor x = at::cat({cls_token.expand({patches.size(0), 1, op.dim}), patches}, 1) + pos_embed;
  for (auto& block : blocks) x = block(x);
  return head(norm(x.select(1, 0)));
}

std::vector<std::string> vit_preset_names() { return {"vit-s16", "vit-b16", "vit-small28"}; }

VitOptions vit_preset(const std::string& name) {
  VitOptions o;
  if (name == "vit-s16" || name == "vit-b16") {
    const bool base = name == "vit-b16";
    o.image_size = 224;
    o.in_channels = 3;
    o.patch_size = 16;
    o.dim = 768;
    o.depth = base ? 12 : 8;
    o.heads = base ? 12 : 8;
    o.mlp_dim = base ? 3072 : 2304;
    o.qkv_bias = base;
    o.classes = 1000;
    return o;
  }
  if (name == "vit-small28") {
    o.block_sizes = {8, 16, 32};
    return o;  // the defaults: 28 x 28 grey, patch 4, dim 128, depth 4, 4 heads, MLP 512
  }
  std::string known;
  for (const std::string& n : vit_preset_names()) known += (known.empty() ? "" : ", ") + n;
  TORCH_CHECK(false, "unknown ViT preset '", name, "'; known: ", known);
}

}  // namespace pixelfly::models
