// Autograd for pixelfly::pixelfly_linear, y = g x W^T + (1 - g) (x v) u^T + bias, written so
// that the activations are read as few times as possible: the forward is one mixed_linear
// pass; the backward is one mixed_linear_grad_input pass for dx, the block-sparse weight
// gradient, and thin matmuls for u and v, the bias gradient riding in the one for u. The
// gradient of g needs no extra pass:
//   sum(dy * x W^T) = <dy^T x, W> on the blocks,  sum(dy * (x v) u^T) = <dy^T (x v), u>.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "pixelfly/ops/block_sparse_ops.h"
#include "pixelfly/ops/pixelfly_linear_ops.h"
#include "ops/thin_matmul.h"

namespace pixelfly::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Leading dimensions flattened: (tokens, features).
at::Tensor rows(const at::Tensor& t) { return t.reshape({-1, t.size(-1)}); }

class PixelflyLinearFunction : public torch::autograd::Function<PixelflyLinearFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& values, const Layout& layout,
                            const at::Tensor& u, const at::Tensor& v, const at::Tensor& gamma,
                            const c10::optional<at::Tensor>& bias) {
    std::vector<int64_t> projected_sizes = x.sizes().vec();
    projected_sizes.back() = v.size(1);
    const at::Tensor projected = thin_matmul(rows(x), v).reshape(projected_sizes);  // (..., r)
    const at::Tensor low_rank_scale = 1 - gamma;
    // A 0-d scale keeps the activations' dtype (type promotion), with no conversion launched.
    at::Tensor y = mixed_linear(x, values, layout, gamma, projected * low_rank_scale, u, bias);
    ctx->save_for_backward({x, values, u, v, gamma, projected});
    ctx->saved_data["layout"] = layout;
    ctx->saved_data["has_bias"] = bias.has_value() && bias->defined();
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &values = saved[1], &u = saved[2], &v = saved[3], &gamma = saved[4],
                     &projected = saved[5];
    const Layout layout = ctx->saved_data["layout"].toCustomClass<LayoutHandle>();
    const at::Tensor dy = grad_outputs[0].contiguous();
    const at::Tensor low_rank_scale = 1 - gamma;  // 0-d: products keep the other operand's dtype
    std::vector<int64_t> rank_sizes = dy.sizes().vec();
    rank_sizes.back() = u.size(1);
    const at::Tensor dy_u = thin_matmul(rows(dy), u).reshape(rank_sizes);  // (..., r)

    // needs_input_grad counts tensor arguments only: x 0, values 1, u 2, v 3, gamma 4, bias 5.
    const bool need_x = ctx->needs_input_grad(0), need_values = ctx->needs_input_grad(1);
    const bool need_u = ctx->needs_input_grad(2), need_v = ctx->needs_input_grad(3);
    const bool need_gamma = ctx->needs_input_grad(4);
    const bool need_bias = ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(5);
    const auto accumulate = at::promote_types(dy.scalar_type(), at::kFloat);  // float32, or float64 for float64

    at::Tensor grad_x, grad_values, grad_u, grad_v, grad_gamma, grad_bias;
    if (need_x) grad_x = mixed_linear_grad_input(dy, values, layout, gamma, dy_u * low_rank_scale, v.t().contiguous());
    if (need_values || need_gamma) {
      const at::Tensor raw = block_sparse_linear_grad_weight(dy, x, layout);  // dy^T x on the blocks
      if (need_gamma) grad_gamma = (raw.to(accumulate) * values).sum();
      if (need_values) grad_values = raw * gamma;
    }
    if (need_u || need_gamma) {
      // dy^T (x v): (out, r). With a bias, the same pass over dy also sums it over the tokens,
      // as the product with a column of ones beside x v, zero columns after it up to a width
      // that is a multiple of 8 (16-byte rows for the tensor-core GEMM).
      const int64_t r = projected.size(-1);
      at::Tensor right = rows(projected);
      if (need_bias) {
        right = at::constant_pad_nd(right, {0, (r + 8) / 8 * 8 - r});
        right.select(1, r).fill_(1);
      }
      const at::Tensor product = thin_matmul(rows(dy).t(), right);
      const at::Tensor raw_u = product.narrow(1, 0, r);
      if (need_bias) grad_bias = product.select(1, r).contiguous();
      if (need_gamma) grad_gamma = grad_gamma - (raw_u.to(accumulate) * u).sum();
      if (need_u) grad_u = raw_u * low_rank_scale;
    } else if (need_bias) {
      grad_bias = rows(dy).sum(0);
    }
    if (need_v) grad_v = thin_matmul(rows(x).t(), rows(dy_u)) * low_rank_scale;
    if (need_gamma) grad_gamma = grad_gamma.to(gamma.scalar_type()).reshape(gamma.sizes());
    return {grad_x, grad_values, at::Tensor(), grad_u, grad_v, grad_gamma, grad_bias};
  }
};

at::Tensor pixelfly_linear_autograd(const at::Tensor& x, const at::Tensor& values, const Layout& layout,
                                    const at::Tensor& u, const at::Tensor& v, const at::Tensor& gamma,
                                    const c10::optional<at::Tensor>& bias) {
  TORCH_CHECK(gamma.dim() == 0, "pixelfly::pixelfly_linear: gamma must be a 0-d tensor, got shape ", gamma.sizes());
  TORCH_CHECK(u.dim() == 2 && v.dim() == 2 && u.size(1) == v.size(1) && u.size(0) == layout->out_features() &&
                  v.size(0) == layout->in_features(),
              "pixelfly::pixelfly_linear: u must be (out_features, r) = (", layout->out_features(),
              ", r) and v (in_features, r) = (", layout->in_features(), ", r), got ", u.sizes(), " and ", v.sizes());
  return PixelflyLinearFunction::apply(x, values, layout, u, v, gamma, bias);
}

}  // namespace

at::Tensor pixelfly_linear(const at::Tensor& x, const at::Tensor& values, const Layout& layout, const at::Tensor& u,
                           const at::Tensor& v, const at::Tensor& gamma, const c10::optional<at::Tensor>& bias) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pixelfly::pixelfly_linear", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const Layout&, const at::Tensor&,
                                               const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&)>();
  return op.call(x, values, layout, u, v, gamma, bias);
}

}  // namespace pixelfly::ops

TORCH_LIBRARY_IMPL(pixelfly, CompositeImplicitAutograd, m) {
  m.impl("pixelfly_linear", &pixelfly::ops::pixelfly_linear_autograd);
}
