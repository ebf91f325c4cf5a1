// Pre-norm transformer block shared by ViT and GPT-2: x + attn(norm1(x)), then + mlp(norm2(x)).
// Its four linear layers live in torch::nn::AnyModule slots so that nn::sparsify can replace
// them; their names inside a block are "attn.qkv", "attn.proj" (type "attention") and
// "mlp.fc1", "mlp.fc2" (type "mlp").
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

#include "pixelfly/models/sparsity.h"
#include "pixelfly/nn/sparsify.h"

namespace pixelfly::models {

struct TransformerBlockOptions {
  int64_t dim = 128;
  int64_t heads = 4;       // must divide dim
  int64_t mlp_dim = 512;   // hidden width of the MLP
  bool qkv_bias = true;
  bool causal = false;     // each position attends only to itself and earlier ones
  bool gelu_tanh = false;  // GELU's tanh approximation (GPT-2) instead of the exact one (ViT)
  double norm_eps = 1e-5;
};

// Multi-head self-attention through at::scaled_dot_product_attention (fused kernels on GPU).
class SelfAttentionImpl : public torch::nn::Module {
 public:
  explicit SelfAttentionImpl(const TransformerBlockOptions& options);
  // x: (batch, tokens, dim) float -> same shape.
  at::Tensor forward(const at::Tensor& x);

  torch::nn::AnyModule qkv;   // dim -> 3 dim, registered as "qkv"
  torch::nn::AnyModule proj;  // dim -> dim, registered as "proj"

 private:
  int64_t heads_;
  bool causal_;
};
TORCH_MODULE(SelfAttention);

class TransformerMlpImpl : public torch::nn::Module {
 public:
  explicit TransformerMlpImpl(const TransformerBlockOptions& options);
  // x: (..., dim) -> (..., dim): fc2(gelu(fc1(x))).
  at::Tensor forward(const at::Tensor& x);

  torch::nn::AnyModule fc1;  // dim -> mlp_dim, registered as "fc1"
  torch::nn::AnyModule fc2;  // mlp_dim -> dim, registered as "fc2"

 private:
  bool gelu_tanh_;
};
TORCH_MODULE(TransformerMlp);

class TransformerBlockImpl : public torch::nn::Module {
 public:
  // Throws c10::Error when heads does not divide dim or a size is < 1.
  explicit TransformerBlockImpl(const TransformerBlockOptions& options);
  // x: (batch, tokens, dim) -> same shape.
  at::Tensor forward(const at::Tensor& x);

  // This block's four linear slots, named prefix + "attn.qkv", ... (prefix e.g. "blocks.3.").
  std::vector<nn::LinearSlot> linear_slots(const std::string& prefix);

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  SelfAttention attn{nullptr};
  TransformerMlp mlp{nullptr};
};
TORCH_MODULE(TransformerBlock);

// The replaceable linears of a stack of blocks registered as "blocks.<i>".
std::vector<nn::LinearSlot> block_stack_slots(std::vector<TransformerBlock>& blocks);
// The same linears' names, types and shapes for `depth` blocks of width `dim` and MLP width
// `mlp_dim`, without building them (for planning a budget).
std::vector<LayerShape> block_stack_layers(int64_t depth, int64_t dim, int64_t mlp_dim);

// Sparsifies a transformer's stack in place as the paper does: MLP fc1/fc2 at `mlp_density`, and
// the attention projections at `attention_density` when `sparsify_attention`. Returns the plans.
std::vector<LayerPlan> sparsify_transformer(torch::nn::Module& model, std::vector<TransformerBlock>& blocks,
                                            double mlp_density, bool sparsify_attention, double attention_density,
                                            double low_rank_share, const std::vector<int64_t>& block_sizes);

}  // namespace pixelfly::models
