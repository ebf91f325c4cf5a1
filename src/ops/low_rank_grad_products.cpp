// pixelfly::low_rank_grad_products: the C++ entry point and the composed implementation (CPU, and
// CUDA where the one-pass kernel does not apply) of the two products of PixelflyLinear's backward
// that read the whole output gradient against the low-rank factors.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "ops/input_checks.h"
#include "ops/shapes.h"
#include "ops/thin_matmul.h"
#include "pixelfly/ops/pixelfly_linear_ops.h"

namespace pixelfly::ops {

std::tuple<at::Tensor, at::Tensor> low_rank_grad_products_composed(const at::Tensor& grad_y, const at::Tensor& u,
                                                                   const at::Tensor& projected, bool ones_column) {
  check_low_rank_grad_product_args("pixelfly::low_rank_grad_products", grad_y, u, projected);
  const at::Tensor dy = row_view(grad_y);
  const at::Tensor grad_projected = thin_matmul(dy, u).reshape(sizes_with_last(grad_y, u.size(1)));
  const auto accumulate = at::promote_types(grad_y.scalar_type(), at::kFloat);  // float32, or float64 for float64
  const at::Tensor product = thin_matmul(dy.t(), row_view(projected)).to(accumulate);
  if (!ones_column) return {grad_projected, product};
  return {grad_projected, at::cat({product, dy.sum(0, /*keepdim=*/false, accumulate).unsqueeze(1)}, 1)};
}

std::tuple<at::Tensor, at::Tensor> low_rank_grad_products(const at::Tensor& grad_y, const at::Tensor& u,
                                                          const at::Tensor& projected, bool ones_column) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("pixelfly::low_rank_grad_products", "")
          .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&, bool)>();
  return op.call(grad_y, u, projected, ones_column);
}

}  // namespace pixelfly::ops

TORCH_LIBRARY_IMPL(pixelfly, CPU, m) {
  m.impl("low_rank_grad_products", &pixelfly::ops::low_rank_grad_products_composed);
}
