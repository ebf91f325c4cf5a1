// pixelfly::pixelfly_linear_grad_params: the C++ entry point and the composed implementation
// (CPU, and CUDA where the fused pass does not apply) of the layer's parameter gradients.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "ops/input_checks.h"
#include "ops/shapes.h"
#include "ops/thin_matmul.h"
#include "pixelfly/ops/block_sparse_ops.h"
#include "pixelfly/ops/pixelfly_linear_ops.h"

namespace pixelfly::ops {
namespace {

using Gradients = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

}  // namespace

Gradients pixelfly_linear_grad_params_composed(const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& values,
                                               const Layout& layout, const at::Tensor& u, const at::Tensor& gamma_in,
                                               const at::Tensor& product, const at::Tensor& grad_projected, bool bias,
                                               const c10::optional<at::Tensor>& grad_weight_sums, bool gamma_is_logit) {
  const int64_t r = check_parameter_gradient_args("pixelfly::pixelfly_linear_grad_params", grad_y, x, values, layout, u,
                                                  gamma_in, product, grad_projected, bias, grad_weight_sums);
  const at::ScalarType dtype = x.scalar_type();
  const at::Tensor gamma = gamma_is_logit ? at::sigmoid(gamma_in) : gamma_in;
  const at::Tensor low_rank_scale = 1 - gamma;  // 0-d: products keep the other operand's dtype
  // dy^T x on the blocks, as given (the accumulation dtype) or computed here.
  const bool given = grad_weight_sums.has_value() && grad_weight_sums->defined();
  const at::Tensor raw = given ? *grad_weight_sums : block_sparse_linear_grad_weight(grad_y, x, layout);
  const at::Tensor raw_u = product.narrow(1, 0, r);  // dy^T (x v), float32 (float64 for float64)
  at::Tensor grad_gamma = (raw.to(product.scalar_type()) * values).sum() - (raw_u * u).sum();
  if (gamma_is_logit) grad_gamma = grad_gamma * gamma * low_rank_scale;  // the logit's: sigmoid' = g (1 - g)
  grad_gamma = grad_gamma.to(gamma.scalar_type());
  return {(raw * gamma).to(dtype), (raw_u * low_rank_scale).to(dtype),
          thin_matmul(row_view(x).t(), row_view(grad_projected)) * low_rank_scale, grad_gamma,
          bias ? product.select(1, r).to(dtype) : at::Tensor()};
}

Gradients pixelfly_linear_grad_params(const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& values,
                                      const Layout& layout, const at::Tensor& u, const at::Tensor& gamma,
                                      const at::Tensor& product, const at::Tensor& grad_projected, bool bias,
                                      const c10::optional<at::Tensor>& grad_weight_sums, bool gamma_is_logit) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pixelfly::pixelfly_linear_grad_params", "")
                             .typed<Gradients(const at::Tensor&, const at::Tensor&, const at::Tensor&, const Layout&,
                                              const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                              const at::Tensor&, bool, const c10::optional<at::Tensor>&, bool)>();
  return op.call(grad_y, x, values, layout, u, gamma, product, grad_projected, bias, grad_weight_sums, gamma_is_logit);
}

}  // namespace pixelfly::ops

TORCH_LIBRARY_IMPL(pixelfly, CPU, m) {
  m.impl("pixelfly_linear_grad_params", &pixelfly::ops::pixelfly_linear_grad_params_composed);
}
