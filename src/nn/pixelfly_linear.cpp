// PixelflyLinear: block-sparse flat butterfly plus low rank, mixed, plus bias.
#include "pixelfly/nn/pixelfly_linear.h"

#include <ATen/ATen.h>

#include <cmath>

#include "pixelfly/ops/pixelfly_linear_ops.h"

namespace pixelfly::nn {

Mixing parse_mixing(const std::string& name) {
  if (name == "scalar") return Mixing::Scalar;
  if (name == "gate") return Mixing::Gate;
  if (name == "fixed") return Mixing::Fixed;
  TORCH_CHECK(false, "mixing must be one of scalar, gate, fixed; got '", name, "'");
}

std::string to_string(Mixing mixing) {
  switch (mixing) {
    case Mixing::Scalar: return "scalar";
    case Mixing::Gate: return "gate";
    case Mixing::Fixed: return "fixed";
  }
  return "unknown";
}

PixelflyLinearImpl::PixelflyLinearImpl(PixelflyLinearOptions options_) : options(std::move(options_)) {
  reset();
}

void PixelflyLinearImpl::reset() {
  const int64_t in = options.in_features(), out = options.out_features();
  int64_t rank = options.rank();
  if (options.rank_fraction() > 0.0) {
    TORCH_CHECK(options.rank_fraction() <= 1.0, "PixelflyLinear: rank_fraction must be in (0, 1], got ",
                options.rank_fraction());
    rank = std::max<int64_t>(1, std::llround(options.rank_fraction() * std::min(in, out)));
  }
  TORCH_CHECK(rank >= 1, "PixelflyLinear: rank must be >= 1 (use BlockSparseLinear for no low-rank part), got ",
              rank);
  TORCH_CHECK(options.mixing() != Mixing::Fixed ||
                  (options.fixed_gamma() >= 0.0 && options.fixed_gamma() <= 1.0),
              "PixelflyLinear: fixed_gamma must be in [0, 1], got ", options.fixed_gamma());

  sparse = register_module("sparse", BlockSparseLinear(BlockSparseLinearOptions(in, out)
                                                           .butterfly_size(options.butterfly_size())
                                                           .factors(options.factors())
                                                           .block(options.block())
                                                           .layout(options.layout())
                                                           .bias(false)));
  low_rank = register_module(
      "low_rank", LowRankLinear(LowRankLinearOptions(in, out, rank).init(options.low_rank_init()).bias(false)));
  mix_logit = gate_weight = gate_bias = bias = at::Tensor();
  if (options.mixing() == Mixing::Scalar) {
    mix_logit = register_parameter("mix_logit", at::zeros({}));
  } else if (options.mixing() == Mixing::Gate) {
    // nn.Linear(in, 1)'s default init.
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    gate_weight = register_parameter("gate_weight", at::empty({in}).uniform_(-bound, bound));
    gate_bias = register_parameter("gate_bias", at::empty({1}).uniform_(-bound, bound));
  }
  if (options.bias()) bias = register_parameter("bias", init_linear_bias(out, in, {}));
}

at::Tensor PixelflyLinearImpl::sparse_weight(const at::Tensor& x) const {
  switch (options.mixing()) {
    case Mixing::Scalar: return at::sigmoid(mix_logit);
    case Mixing::Fixed: return at::scalar_tensor(options.fixed_gamma(), sparse->blocks.options());
    case Mixing::Gate: return 1.0 - at::sigmoid(at::matmul(x, gate_weight).unsqueeze(-1) + gate_bias);
  }
  TORCH_CHECK(false, "PixelflyLinear: unknown mixing mode");
}

at::Tensor PixelflyLinearImpl::forward(const at::Tensor& x) {
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == options.in_features(),
              "PixelflyLinear: x must have last dimension in_features = ", options.in_features(),
              ", got shape ", x.sizes());
  const c10::optional<at::Tensor> bias_arg = bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt;
  // One operator for the whole layer: fused into single passes over the activations on GPUs.
  // Scalar mode passes the logit itself, whose sigmoid the operator applies as it reads it.
  if (options.mixing() == Mixing::Scalar) {
    return ops::pixelfly_linear(x, sparse->blocks, sparse->layout(), low_rank->u, low_rank->v, mix_logit, bias_arg,
                                /*gamma_is_logit=*/true);
  }
  if (options.mixing() == Mixing::Fixed) {
    return ops::pixelfly_linear(x, sparse->blocks, sparse->layout(), low_rank->u, low_rank->v, sparse_weight(x),
                                bias_arg);
  }
  // Gate mode: the mix differs per token, so the two parts are computed apart.
  const at::Tensor s = sparse->forward(x);
  const at::Tensor l = low_rank->forward(x);
  const at::Tensor w = sparse_weight(x);
  at::Tensor y = at::lerp(l, s, w);  // l + w (s - l) = w s + (1 - w) l
  return bias.defined() ? y + bias : y;
}

at::Tensor PixelflyLinearImpl::dense_sparse_part() const { return sparse->dense_weight(); }

at::Tensor PixelflyLinearImpl::dense_low_rank_part() const { return low_rank->dense_weight(); }

at::Tensor PixelflyLinearImpl::dense_equivalent() const {
  TORCH_CHECK(options.mixing() != Mixing::Gate,
              "PixelflyLinear::dense_equivalent: in gate mode the mix depends on the input; use "
              "sparse_weight(x), dense_sparse_part() and dense_low_rank_part()");
  const at::Tensor w = sparse_weight(at::Tensor());
  return at::lerp(dense_low_rank_part(), dense_sparse_part(), w);
}

int64_t PixelflyLinearImpl::parameter_count() const {
  int64_t count = 0;
  for (const auto& p : parameters()) count += p.numel();
  return count;
}

int64_t PixelflyLinearImpl::dense_parameter_count() const {
  return options.out_features() * options.in_features() + (bias.defined() ? bias.numel() : 0);
}

}  // namespace pixelfly::nn
