// LowRankLinear: y = (x V) U^T + bias with U (out x r) and V (in x r); U V^T is never formed
// in the forward pass.
#pragma once

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include "pixelfly/nn/init.h"

namespace pixelfly::nn {

struct LowRankLinearOptions {
  LowRankLinearOptions(int64_t in_features, int64_t out_features, int64_t rank)
      : in_features_(in_features), out_features_(out_features), rank_(rank) {}
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, out_features);
  TORCH_ARG(int64_t, rank);  // 1 <= rank <= min(in_features, out_features)
  TORCH_ARG(LowRankInit, init) = LowRankInit::Svd;
  TORCH_ARG(bool, bias) = true;
};

class LowRankLinearImpl : public torch::nn::Cloneable<LowRankLinearImpl> {
 public:
  LowRankLinearImpl(int64_t in_features, int64_t out_features, int64_t rank)
      : LowRankLinearImpl(LowRankLinearOptions(in_features, out_features, rank)) {}
  explicit LowRankLinearImpl(LowRankLinearOptions options);

  void reset() override;
  // x: (..., in_features) -> (..., out_features).
  at::Tensor forward(const at::Tensor& x);
  // U V^T, out x in (differentiable).
  at::Tensor dense_weight() const;
  int64_t parameter_count() const;
  int64_t dense_parameter_count() const;

  LowRankLinearOptions options;
  at::Tensor u;  // out x rank
  at::Tensor v;  // in x rank
  at::Tensor bias;
};
TORCH_MODULE(LowRankLinear);

}  // namespace pixelfly::nn
