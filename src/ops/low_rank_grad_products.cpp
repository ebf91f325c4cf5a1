// pixelfly::low_rank_grad_products and grad_weight_and_low_rank_products: the C++ entry points and
// the composed implementations (CPU, and CUDA where the one-pass kernels do not apply) of the
// products of PixelflyLinear's backward that read the whole output gradient against the low-rank
// factors (and, for the second, against x on the blocks), and the query of whether the second is
// one pass over the output gradient.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "ops/input_checks.h"
#include "ops/shapes.h"
#include "ops/thin_matmul.h"
#include "pixelfly/ops/block_sparse_ops.h"
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

std::tuple<at::Tensor, at::Tensor, at::Tensor> grad_weight_and_low_rank_products_composed(
    const at::Tensor& grad_y, const at::Tensor& x, const Layout& layout, const at::Tensor& u,
    const at::Tensor& projected, bool ones_column) {
  check_grad_weight_and_low_rank_args("pixelfly::grad_weight_and_low_rank_products", grad_y, x, layout, u, projected);
  const auto [grad_projected, product] = low_rank_grad_products(grad_y, u, projected, ones_column);
  // The weight sums in the product's dtype (float32 for 16-bit inputs) from inputs widened to it,
  // not a 16-bit result widened afterwards.
  const auto sums_type = product.scalar_type();
  return {grad_projected, product, block_sparse_linear_grad_weight(grad_y.to(sums_type), x.to(sums_type), layout)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> grad_weight_and_low_rank_products(const at::Tensor& grad_y,
                                                                                 const at::Tensor& x,
                                                                                 const Layout& layout,
                                                                                 const at::Tensor& u,
                                                                                 const at::Tensor& projected,
                                                                                 bool ones_column) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pixelfly::grad_weight_and_low_rank_products", "")
                             .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
                                 const at::Tensor&, const at::Tensor&, const Layout&, const at::Tensor&,
                                 const at::Tensor&, bool)>();
  return op.call(grad_y, x, layout, u, projected, ones_column);
}

bool grad_weight_and_low_rank_products_is_one_pass(const at::Tensor& x, const Layout& layout, int64_t rank) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pixelfly::grad_weight_and_low_rank_products_is_one_pass", "")
                             .typed<bool(const at::Tensor&, const Layout&, int64_t)>();
  return op.call(x, layout, rank);
}

namespace {
bool never_one_pass(const at::Tensor&, const Layout&, int64_t) { return false; }
}  // namespace

}  // namespace pixelfly::ops

TORCH_LIBRARY_IMPL(pixelfly, CPU, m) {
  m.impl("low_rank_grad_products", &pixelfly::ops::low_rank_grad_products_composed);
  m.impl("grad_weight_and_low_rank_products", &pixelfly::ops::grad_weight_and_low_rank_products_composed);
  m.impl("grad_weight_and_low_rank_products_is_one_pass", &pixelfly::ops::never_one_pass);
}
