// GPT-2 (Radford et al. 2019) language model: token + learned position embeddings, pre-norm
// causal transformer blocks (models/transformer.h, GELU tanh MLP of 4 x dim), a final LayerNorm
// and an LM head tied to the token embedding or separate. With Sparsity::Pixelfly the MLP
// fc1/fc2 of every block become PixelflyLinear layers, and with sparsify_attention also qkv/proj
// (spec/pixelfly.md section 4: the paper keeps attention, embeddings and head dense).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <string>
#include <vector>

#include "pixelfly/models/sparsity.h"
#include "pixelfly/models/transformer.h"
#include "pixelfly/nn/sparsify.h"
#include "pixelfly/pattern/budget_planner.h"

namespace pixelfly::models {

struct Gpt2Options {
  int64_t vocab_size = 256;
  int64_t context = 128;  // the longest sequence (number of learned positions)
  int64_t dim = 128;
  int64_t depth = 4;
  int64_t heads = 4;      // must divide dim
  int64_t mlp_dim = 512;  // 4 x dim in GPT-2
  bool tied_head = true;  // the LM head uses the token embedding's weight
  Sparsity sparsity = Sparsity::Dense;
  double mlp_density = 0.25;        // target total density of each MLP layer (pixelfly)
  double low_rank_share = 0.2;      // of each budget, for the low-rank term
  bool sparsify_attention = false;  // also qkv and proj
  double attention_density = 0.25;  // their target total density
  std::vector<int64_t> block_sizes = {32, 64, 128};  // the planner's choices (see MixerOptions)
};

// Presets (all with a tied head):
//   "gpt2-small":  dim 768, 12 layers, 12 heads, context 1024, vocab 50257; 124,439,808
//                  parameters dense (as the released GPT-2 small).
//   "gpt2-medium": dim 1024, 24 layers, 16 heads, context 1024, vocab 50257.
//   "gpt2-tiny":   dim 128, 4 layers, 4 heads, context 128, vocab 256 (bytes), block sizes
//                  {8, 16, 32}: trains on a CPU.
// Throws c10::Error for an unknown name, listing the known ones.
Gpt2Options gpt2_preset(const std::string& name);
std::vector<std::string> gpt2_preset_names();

class Gpt2Impl : public torch::nn::Module {
 public:
  // Builds the dense model with GPT-2's initialisation (normal(0, 0.02) weights, zero biases,
  // residual projections proj/fc2 scaled by 1/sqrt(2 depth)), then (Sparsity::Pixelfly)
  // sparsifies it with nn::sparsify. Throws c10::Error for inconsistent sizes or a budget the
  // planner rejects.
  explicit Gpt2Impl(Gpt2Options options);
  // tokens: (batch, T) int64 with 1 <= T <= context, values in [0, vocab_size) (not checked)
  // -> logits (batch, T, vocab_size) float. Position t sees tokens 0..t only.
  // Throws c10::Error for another dtype or rank, or T outside [1, context].
  at::Tensor forward(const at::Tensor& tokens);

  // Every block's qkv, proj (type "attention") and fc1, fc2 (type "mlp"), named
  // "blocks.<i>.attn.qkv", "blocks.<i>.mlp.fc1", ...
  std::vector<nn::LinearSlot> linear_slots();
  // The LM head's (vocab_size, dim) weight: the token embedding's own tensor when tied.
  const at::Tensor& head_weight() const;
  // The planner's choice per sparsified layer (empty for a dense model).
  const std::vector<LayerPlan>& plans() const { return plans_; }
  const Gpt2Options& options() const { return options_; }

  torch::nn::Embedding token_embed{nullptr};     // "token_embed"
  torch::nn::Embedding position_embed{nullptr};  // "position_embed"
  torch::nn::ModuleList block_list{nullptr};     // registered as "blocks"
  std::vector<TransformerBlock> blocks;          // the same modules, typed
  torch::nn::LayerNorm norm{nullptr};            // "norm"
  torch::nn::Linear head{nullptr};               // "head", bias-free; null when tied

 private:
  Gpt2Options options_;
  std::vector<LayerPlan> plans_;
};
TORCH_MODULE(Gpt2);

}  // namespace pixelfly::models
