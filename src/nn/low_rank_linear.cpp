// LowRankLinear: a linear layer whose weight is the product of two thin factors.
#include "pixelfly/nn/low_rank_linear.h"

#include <ATen/ATen.h>

namespace pixelfly::nn {

LowRankLinearImpl::LowRankLinearImpl(LowRankLinearOptions options_) : options(std::move(options_)) {
  reset();
}

void LowRankLinearImpl::reset() {
  TORCH_CHECK(options.in_features() >= 1 && options.out_features() >= 1,
              "LowRankLinear: in_features and out_features must be >= 1, got ", options.in_features(),
              " and ", options.out_features());
  auto [u0, v0] = init_low_rank_factors(options.out_features(), options.in_features(), options.rank(),
                                        options.init(), {});
  u = register_parameter("u", u0);
  v = register_parameter("v", v0);
  if (options.bias()) {
    bias = register_parameter("bias", init_linear_bias(options.out_features(), options.in_features(), {}));
  } else {
    bias = at::Tensor();
  }
}

at::Tensor LowRankLinearImpl::forward(const at::Tensor& x) {
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == options.in_features(), "LowRankLinear: x must have last dimension in_features = ",
              options.in_features(), ", got shape ", x.sizes());
  at::Tensor y = at::matmul(at::matmul(x, v), u.t());
  return bias.defined() ? y + bias.to(y.scalar_type()) : y;  // bf16 under autocast, as nn::Linear
}

at::Tensor LowRankLinearImpl::dense_weight() const { return at::matmul(u, v.t()); }

int64_t LowRankLinearImpl::parameter_count() const {
  return u.numel() + v.numel() + (bias.defined() ? bias.numel() : 0);
}

int64_t LowRankLinearImpl::dense_parameter_count() const {
  return options.out_features() * options.in_features() + (bias.defined() ? bias.numel() : 0);
}

}  // namespace pixelfly::nn
