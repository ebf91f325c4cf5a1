// PixelflyLinear: the Pixelated Butterfly layer (spec/pixelfly.md section 2),
//   y = mix(x B^T, (x V) U^T) + bias
// with B block-sparse in a flat block butterfly layout (submodule "sparse") and U V^T low rank
// (submodule "low_rank"). Mixing modes:
//   Scalar (default): y = g x B^T + (1 - g) x (U V^T)^T, g = sigmoid(mix_logit), mix_logit
//                     learnable, starting at 0 (g = 0.5);
//   Gate:             per token g = sigmoid(x . gate_weight + gate_bias) (the released code),
//                     y = (1 - g) x B^T + g x (U V^T)^T;
//   Fixed:            y = fixed_gamma x B^T + (1 - fixed_gamma) x (U V^T)^T.
#pragma once

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include "pixelfly/nn/block_sparse_linear.h"
#include "pixelfly/nn/low_rank_linear.h"

namespace pixelfly::nn {

enum class Mixing { Scalar, Gate, Fixed };

// "scalar" | "gate" | "fixed" (throws c10::Error for anything else).
Mixing parse_mixing(const std::string& name);
std::string to_string(Mixing mixing);

struct PixelflyLinearOptions {
  PixelflyLinearOptions(int64_t in_features, int64_t out_features)
      : in_features_(in_features), out_features_(out_features) {}
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, out_features);
  // Sparse part: flat block butterfly (n, k, b), or an explicit layout. Defaults are the
  // released settings.
  TORCH_ARG(int64_t, butterfly_size) = 16;
  TORCH_ARG(int64_t, factors) = 2;
  TORCH_ARG(int64_t, block) = 32;
  TORCH_ARG(std::shared_ptr<const BlockLayout>, layout) = nullptr;
  // Low-rank part: rank, or when rank_fraction > 0, round(rank_fraction * min(in, out)).
  TORCH_ARG(int64_t, rank) = 32;
  TORCH_ARG(double, rank_fraction) = 0.0;
  TORCH_ARG(LowRankInit, low_rank_init) = LowRankInit::Svd;
  TORCH_ARG(Mixing, mixing) = Mixing::Scalar;
  TORCH_ARG(double, fixed_gamma) = 0.5;  // weight of the sparse part in Fixed mode
  TORCH_ARG(bool, bias) = true;
};

class PixelflyLinearImpl : public torch::nn::Cloneable<PixelflyLinearImpl> {
 public:
  PixelflyLinearImpl(int64_t in_features, int64_t out_features)
      : PixelflyLinearImpl(PixelflyLinearOptions(in_features, out_features)) {}
  explicit PixelflyLinearImpl(PixelflyLinearOptions options);

  void reset() override;
  // x: (..., in_features) -> (..., out_features).
  at::Tensor forward(const at::Tensor& x);

  // Weight of the sparse part: a 0-d tensor in Scalar/Fixed mode, (..., 1) per token in Gate
  // mode (where it is 1 - g, so that y = w x B^T + (1 - w) x (U V^T)^T in every mode).
  at::Tensor sparse_weight(const at::Tensor& x) const;
  // B (out x in) and U V^T (out x in) as dense matrices (differentiable).
  at::Tensor dense_sparse_part() const;
  at::Tensor dense_low_rank_part() const;
  // The single out x in matrix the layer applies, so that y = x W^T + bias. Scalar and Fixed
  // modes only: in Gate mode the mix depends on x, and this throws.
  at::Tensor dense_equivalent() const;

  int64_t rank() const { return low_rank->options.rank(); }
  int64_t parameter_count() const;
  int64_t dense_parameter_count() const;

  PixelflyLinearOptions options;
  BlockSparseLinear sparse{nullptr};
  LowRankLinear low_rank{nullptr};
  at::Tensor mix_logit;    // Scalar mode
  at::Tensor gate_weight;  // Gate mode: (in_features)
  at::Tensor gate_bias;    // Gate mode: (1)
  at::Tensor bias;
};
TORCH_MODULE(PixelflyLinear);

}  // namespace pixelfly::nn
