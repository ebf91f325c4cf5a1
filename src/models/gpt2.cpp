// GPT-2 language model with optional Pixelfly MLP (and attention projection) layers.
#include "pixelfly/models/gpt2.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <cmath>

namespace pixelfly::models {
namespace {

// GPT-2's initialisation of a dense linear layer: weight ~ normal(0, std), zero bias.
void init_linear(const torch::nn::AnyModule& slot, double std) {
  auto& linear = *slot.get<torch::nn::Linear>();
  torch::NoGradGuard no_grad;
  linear.weight.normal_(0.0, std);
  if (linear.bias.defined()) linear.bias.zero_();
}

}  // namespace

Gpt2Impl::Gpt2Impl(Gpt2Options o) : options_(std::move(o)) {
  const Gpt2Options& op = options_;
  TORCH_CHECK(op.vocab_size >= 2 && op.context >= 1 && op.depth >= 1,
              "GPT-2: vocab_size must be >= 2, context and depth >= 1, got ", op.vocab_size, ", ", op.context, ", ",
              op.depth);
  TransformerBlockOptions block;
  block.dim = op.dim;
  block.heads = op.heads;
  block.mlp_dim = op.mlp_dim;
  block.causal = true;
  block.gelu_tanh = true;
  // Blocks first: they check dim and heads before any tensor of size dim is made.
  std::vector<TransformerBlock> built;
  for (int64_t i = 0; i < op.depth; ++i) built.push_back(TransformerBlock(block));
  token_embed = register_module("token_embed", torch::nn::Embedding(op.vocab_size, op.dim));
  position_embed = register_module("position_embed", torch::nn::Embedding(op.context, op.dim));
  block_list = register_module("blocks", torch::nn::ModuleList());
  for (const TransformerBlock& b : built) {
    blocks.push_back(b);
    block_list->push_back(b);
  }
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({op.dim})));
  if (!op.tied_head) {
    head = register_module("head", torch::nn::Linear(torch::nn::LinearOptions(op.dim, op.vocab_size).bias(false)));
  }

  {
    torch::NoGradGuard no_grad;
    token_embed->weight.normal_(0.0, 0.02);
    position_embed->weight.normal_(0.0, 0.02);
    if (head) head->weight.normal_(0.0, 0.02);
  }
  const double residual_std = 0.02 / std::sqrt(2.0 * static_cast<double>(op.depth));
  for (auto& b : blocks) {
    init_linear(b->attn->qkv, 0.02);
    init_linear(b->attn->proj, residual_std);
    init_linear(b->mlp->fc1, 0.02);
    init_linear(b->mlp->fc2, residual_std);
  }

  if (op.sparsity == Sparsity::Pixelfly) {
    plans_ = sparsify_transformer(*this, blocks, op.mlp_density, op.sparsify_attention, op.attention_density,
                                  op.low_rank_share, op.block_sizes);
  }
}

std::vector<nn::LinearSlot> Gpt2Impl::linear_slots() { return block_stack_slots(blocks); }

const at::Tensor& Gpt2Impl::head_weight() const { return head ? head->weight : token_embed->weight; }

at::Tensor Gpt2Impl::forward(const at::Tensor& tokens) {
  TORCH_CHECK(tokens.dim() == 2 && tokens.scalar_type() == at::kLong,
              "GPT-2: tokens must be a (batch, T) int64 tensor, got ", tokens.dim(), "-d ", tokens.scalar_type());
  const int64_t length = tokens.size(1);
  TORCH_CHECK(length >= 1 && length <= options_.context, "GPT-2: sequence length T = ", length,
              " must be in [1, context = ", options_.context, "]");
  const at::Tensor positions = at::arange(length, tokens.options());
  at::Tensor x = token_embed(tokens) + position_embed(positions);
  for (auto& block : blocks) x = block(x);
  return at::linear(norm(x), head_weight());
}

std::vector<std::string> gpt2_preset_names() { return {"gpt2-small", "gpt2-medium", "gpt2-tiny"}; }

Gpt2Options gpt2_preset(const std::string& name) {
  Gpt2Options o;
  if (name == "gpt2-small" || name == "gpt2-medium") {
    const bool medium = name == "gpt2-medium";
    o.vocab_size = 50257;
    o.context = 1024;
    o.dim = medium ? 1024 : 768;
    o.depth = medium ? 24 : 12;
    o.heads = medium ? 16 : 12;
    o.mlp_dim = 4 * o.dim;
    return o;
  }
  if (name == "gpt2-tiny") {
    o.block_sizes = {8, 16, 32};
    return o;  // the defaults: dim 128, 4 layers, 4 heads, context 128, vocab 256
  }
  std::string known;
  for (const std::string& n : gpt2_preset_names()) known += (known.empty() ? "" : ", ") + n;
  TORCH_CHECK(false, "unknown GPT-2 preset '", name, "'; known: ", known);
}

}  // namespace pixelfly::models
