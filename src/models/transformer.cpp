// Pre-norm transformer block (self-attention + GELU MLP) used by ViT and GPT-2.
#include "pixelfly/models/transformer.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>

namespace pixelfly::models {
namespace {

torch::nn::AnyModule linear(int64_t in, int64_t out, bool bias) {
  return torch::nn::AnyModule(torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias)));
}

}  // namespace

SelfAttentionImpl::SelfAttentionImpl(const TransformerBlockOptions& o) : heads_(o.heads), causal_(o.causal) {
  qkv = linear(o.dim, 3 * o.dim, o.qkv_bias);
  proj = linear(o.dim, o.dim, /*bias=*/true);
  register_module("qkv", qkv.ptr());
  register_module("proj", proj.ptr());
}

at::Tensor SelfAttentionImpl::forward(const at::Tensor& x) {
  const int64_t batch = x.size(0), tokens = x.size(1), dim = x.size(2);
  // (batch, tokens, 3, heads, head_dim) -> (3, batch, heads, tokens, head_dim)
  const at::Tensor qkv_heads = qkv.forward(x).view({batch, tokens, 3, heads_, dim / heads_}).permute({2, 0, 3, 1, 4});
  const at::Tensor mixed = at::scaled_dot_product_attention(qkv_heads[0], qkv_heads[1], qkv_heads[2], {},
                                                            /*dropout_p=*/0.0, /*is_causal=*/causal_);
  return proj.forward(mixed.transpose(1, 2).reshape({batch, tokens, dim}));
}

TransformerMlpImpl::TransformerMlpImpl(const TransformerBlockOptions& o) : gelu_tanh_(o.gelu_tanh) {
  fc1 = linear(o.dim, o.mlp_dim, /*bias=*/true);
  fc2 = linear(o.mlp_dim, o.dim, /*bias=*/true);
  register_module("fc1", fc1.ptr());
  register_module("fc2", fc2.ptr());
}

at::Tensor TransformerMlpImpl::forward(const at::Tensor& x) {
  return fc2.forward(at::gelu(fc1.forward(x), gelu_tanh_ ? "tanh" : "none"));
}

TransformerBlockImpl::TransformerBlockImpl(const TransformerBlockOptions& o) {
  TORCH_CHECK(o.dim >= 1 && o.heads >= 1 && o.mlp_dim >= 1, "transformer block: dim, heads and mlp_dim must be >= 1, got ",
              o.dim, ", ", o.heads, ", ", o.mlp_dim);
  TORCH_CHECK(o.dim % o.heads == 0, "transformer block: heads ", o.heads, " must divide dim ", o.dim);
  const auto norm_options = torch::nn::LayerNormOptions({o.dim}).eps(o.norm_eps);
  norm1 = register_module("norm1", torch::nn::LayerNorm(norm_options));
  attn = register_module("attn", SelfAttention(o));
  norm2 = register_module("norm2", torch::nn::LayerNorm(norm_options));
  mlp = register_module("mlp", TransformerMlp(o));
}

at::Tensor TransformerBlockImpl::forward(const at::Tensor& x) {
  const at::Tensor y = x + attn(norm1(x));
  return y + mlp(norm2(y));
}

std::vector<nn::LinearSlot> TransformerBlockImpl::linear_slots(const std::string& prefix) {
  return {{prefix + "attn.qkv", "attention", &attn->qkv},
          {prefix + "attn.proj", "attention", &attn->proj},
          {prefix + "mlp.fc1", "mlp", &mlp->fc1},
          {prefix + "mlp.fc2", "mlp", &mlp->fc2}};
}

std::vector<nn::LinearSlot> block_stack_slots(std::vector<TransformerBlock>& blocks) {
  std::vector<nn::LinearSlot> slots;
  for (size_t i = 0; i < blocks.size(); ++i) {
    for (nn::LinearSlot& s : blocks[i]->linear_slots("blocks." + std::to_string(i) + ".")) slots.push_back(s);
  }
  return slots;
}

std::vector<LayerShape> block_stack_layers(int64_t depth, int64_t dim, int64_t mlp_dim) {
  std::vector<LayerShape> layers;
  for (int64_t i = 0; i < depth; ++i) {
    const std::string prefix = "blocks." + std::to_string(i) + ".";
    layers.push_back({prefix + "attn.qkv", "attention", 3 * dim, dim});
    layers.push_back({prefix + "attn.proj", "attention", dim, dim});
    layers.push_back({prefix + "mlp.fc1", "mlp", mlp_dim, dim});
    layers.push_back({prefix + "mlp.fc2", "mlp", dim, mlp_dim});
  }
  return layers;
}

std::vector<LayerPlan> sparsify_transformer(torch::nn::Module& model, std::vector<TransformerBlock>& blocks,
                                            double mlp_density, bool sparsify_attention, double attention_density,
                                            double low_rank_share, const std::vector<int64_t>& block_sizes) {
  PlannerOptions planner;
  planner.density_by_type = {{"mlp", mlp_density}};
  if (sparsify_attention) planner.density_by_type["attention"] = attention_density;
  planner.low_rank_share = low_rank_share;
  planner.block_sizes = block_sizes;
  return nn::sparsify(model, slots_in_budget(block_stack_slots(blocks), planner), planner);
}

}  // namespace pixelfly::models
