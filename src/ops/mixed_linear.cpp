// The mixed operators' C++ entry points and their composed implementation (CPU, and CUDA
// where no fused kernel applies).
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "ops/input_checks.h"
#include "pixelfly/ops/block_sparse_ops.h"
#include "pixelfly/ops/pixelfly_linear_ops.h"

namespace pixelfly::ops {

at::Tensor mixed_linear_composed(const at::Tensor& x, const at::Tensor& values, const Layout& layout,
                                 const at::Tensor& scale_in, const at::Tensor& low_rank_a, const at::Tensor& low_rank_b,
                                 const c10::optional<at::Tensor>& bias, bool scale_is_logit) {
  TORCH_CHECK(layout, "pixelfly::mixed_linear: layout is null");
  check_mixed_arguments("pixelfly::mixed_linear", x, scale_in, low_rank_a, low_rank_b, layout->out_features(), 0, 1,
                        bias, layout->out_features());
  const at::Tensor scale = scale_is_logit ? at::sigmoid(scale_in) : scale_in;
  // In place on the fresh block-sparse output: one pass for the scale, the low-rank GEMM
  // (its small factor b carrying 1 - scale) accumulated into it, one pass for the bias.
  at::Tensor y = block_sparse_linear(x, values, layout);
  at::Tensor y_rows = y.view({-1, y.size(-1)});
  y_rows.mul_(scale).addmm_(low_rank_a.reshape({-1, low_rank_a.size(-1)}), (low_rank_b * (1 - scale)).t());
  if (bias.has_value() && bias->defined()) y_rows.add_(*bias);
  return y;
}

at::Tensor mixed_linear_grad_input_composed(const at::Tensor& grad_y, const at::Tensor& values, const Layout& layout,
                                            const at::Tensor& scale_in, const at::Tensor& low_rank_a,
                                            const at::Tensor& low_rank_b_t, bool scale_is_logit) {
  TORCH_CHECK(layout, "pixelfly::mixed_linear_grad_input: layout is null");
  check_mixed_arguments("pixelfly::mixed_linear_grad_input", grad_y, scale_in, low_rank_a, low_rank_b_t, 0,
                        layout->in_features(), 0, c10::nullopt, 0);
  const at::Tensor scale = scale_is_logit ? at::sigmoid(scale_in) : scale_in;
  at::Tensor dx = block_sparse_linear_grad_input(grad_y, values, layout);
  dx.view({-1, dx.size(-1)}).mul_(scale).addmm_(low_rank_a.reshape({-1, low_rank_a.size(-1)}), low_rank_b_t * (1 - scale));
  return dx;
}

at::Tensor mixed_linear(const at::Tensor& x, const at::Tensor& values, const Layout& layout, const at::Tensor& scale,
                        const at::Tensor& low_rank_a, const at::Tensor& low_rank_b,
                        const c10::optional<at::Tensor>& bias, bool scale_is_logit) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pixelfly::mixed_linear", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const Layout&, const at::Tensor&,
                                               const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&,
                                               bool)>();
  return op.call(x, values, layout, scale, low_rank_a, low_rank_b, bias, scale_is_logit);
}

at::Tensor mixed_linear_grad_input(const at::Tensor& grad_y, const at::Tensor& values, const Layout& layout,
                                   const at::Tensor& scale, const at::Tensor& low_rank_a,
                                   const at::Tensor& low_rank_b_t, bool scale_is_logit) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pixelfly::mixed_linear_grad_input", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const Layout&, const at::Tensor&,
                                               const at::Tensor&, const at::Tensor&, bool)>();
  return op.call(grad_y, values, layout, scale, low_rank_a, low_rank_b_t, scale_is_logit);
}

}  // namespace pixelfly::ops

TORCH_LIBRARY_IMPL(pixelfly, CPU, m) {
  m.impl("mixed_linear", &pixelfly::ops::mixed_linear_composed);
  m.impl("mixed_linear_grad_input", &pixelfly::ops::mixed_linear_grad_input_composed);
}
