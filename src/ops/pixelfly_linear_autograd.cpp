// Autograd for pixelfly::pixelfly_linear, y = g x W^T + (1 - g) (x v) u^T + bias, written so
// that the activations are read as few times as possible and the step makes few launches: the
// forward is x v and one mixed_linear pass; the backward is dy u, one mixed_linear_grad_input
// pass for dx, and pixelfly_linear_grad_params for every parameter. On CUDA a rank that is not a
// multiple of 8 is padded once, in u and v (zero columns add nothing): every product then has
// 16-byte rows, which cuBLAS's fast kernels and the fused kernels' TMA copies need, instead of
// the activations being padded per call. With a bias, the forward
// keeps x v beside a column of ones, [x v | 1 ...], so that the u gradient's product dy^T [x v |
// 1 ...] also sums dy over the tokens. The gradient of g needs no extra pass:
//   sum(dy * x W^T) = <dy^T x, W> on the blocks,  sum(dy * (x v) u^T) = <dy^T (x v), u>.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "pixelfly/ops/block_sparse_ops.h"
#include "pixelfly/ops/pixelfly_linear_ops.h"
#include "ops/shapes.h"
#include "ops/thin_matmul.h"

namespace pixelfly::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// t (n, rank) with zero columns up to `columns`.
at::Tensor with_columns(const at::Tensor& t, int64_t columns) {
  return columns == t.size(1) ? t : at::constant_pad_nd(t, {0, columns - t.size(1)});
}

class PixelflyLinearFunction : public torch::autograd::Function<PixelflyLinearFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& values, const Layout& layout,
                            const at::Tensor& u_in, const at::Tensor& v_in, const at::Tensor& gamma,
                            const c10::optional<at::Tensor>& bias) {
    const bool has_bias = bias.has_value() && bias->defined();
    const int64_t rank = v_in.size(1);
    const int64_t r = x.is_cuda() ? (rank + 7) / 8 * 8 : rank;
    const at::Tensor u = with_columns(u_in, r), v = with_columns(v_in, r);
    // (..., r) = x v; with a bias (..., w) = [x v | 1 ...], w = r + 1 rounded up to a multiple
    // of 8 (16-byte rows for the tensor-core products).
    const int64_t width = has_bias ? (r + 8) / 8 * 8 : r;
    const at::Tensor projected = (has_bias ? thin_matmul_then_ones(row_view(x), v, width) : thin_matmul(row_view(x), v))
                                     .reshape(sizes_with_last(x, width));
    at::Tensor y = mixed_linear(x, values, layout, gamma, projected.narrow(-1, 0, r), u, bias);
    ctx->save_for_backward({x, values, u, v, gamma, projected});
    ctx->saved_data["layout"] = layout;
    ctx->saved_data["has_bias"] = has_bias;
    ctx->saved_data["rank"] = rank;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &values = saved[1], &u = saved[2], &v = saved[3], &gamma = saved[4],
                     &projected = saved[5];
    const Layout layout = ctx->saved_data["layout"].toCustomClass<LayoutHandle>();
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    const int64_t rank = ctx->saved_data["rank"].toInt();
    const at::Tensor dy = grad_outputs[0].contiguous();
    const at::Tensor dy_u = thin_matmul(row_view(dy), u).reshape(sizes_with_last(dy, u.size(1)));  // (..., r)

    // needs_input_grad counts the tensor arguments given: x 0, values 1, u 2, v 3, gamma 4, bias 5.
    auto needed = [&](size_t i) { return (i < 5 || has_bias) && ctx->needs_input_grad(i); };
    at::Tensor grad_x, grad_values, grad_u, grad_v, grad_gamma, grad_bias;
    if (needed(0)) grad_x = mixed_linear_grad_input(dy, values, layout, gamma, dy_u, v.t().contiguous());
    if (needed(1) || needed(2) || needed(3) || needed(4) || needed(5)) {
      std::tie(grad_values, grad_u, grad_v, grad_gamma, grad_bias) =
          pixelfly_linear_grad_params(dy, x, values, layout, u, gamma, projected, dy_u, has_bias);
    }
    auto keep = [&](size_t i, const at::Tensor& grad) { return needed(i) ? grad : at::Tensor(); };
    if (grad_u.defined()) grad_u = grad_u.narrow(1, 0, rank);
    if (grad_v.defined()) grad_v = grad_v.narrow(1, 0, rank);
    return {grad_x, keep(1, grad_values), at::Tensor(), keep(2, grad_u), keep(3, grad_v), keep(4, grad_gamma),
            keep(5, grad_bias)};
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
