// Autograd for pixelfly::pixelfly_linear, y = g x W^T + (1 - g) (x v) u^T + bias, written so
// that the activations are read as few times as possible and the step makes few launches: the
// forward is x v and one mixed_linear pass; the backward is low_rank_grad_products (dy u and
// dy^T [x v | 1] in one pass over dy), then side by side (side_stream.h) one
// mixed_linear_grad_input pass for dx and pixelfly_linear_grad_params for every parameter. Where
// grad_weight_and_low_rank_products is one pass over dy (layouts whose weight-gradient pieces read
// each row of dy once, such as the paper's fc1 shapes), that pass takes the place of
// low_rank_grad_products and the weight gradient's own pass over dy. The
// parameters are brought to the activations' dtype inside (under autocast they arrive as
// float32), each by one copy that also lays it out for the kernels: on CUDA a rank that is not a
// multiple of 8 gets zero columns in u and v, which add nothing but give every product 16-byte
// rows (cuBLAS's fast kernels and the fused kernels' TMA copies need them); the dx pass takes v as
// the transposed view v^T (read in place where its low-rank term runs beside the ring of stages,
// copied to (r, in) rows where it runs in the ring). With a bias, the u gradient's product takes a
// column of ones after x v, dy^T [x v | 1], and so also sums dy over the tokens (on the GPU the
// ones live in the kernel's registers, not in memory). The gradient of g needs no extra pass:
//   sum(dy * x W^T) = <dy^T x, W> on the blocks,  sum(dy * (x v) u^T) = <dy^T (x v), u>.
// A backward that records its own graph (create_graph: a gradient penalty, a Hessian-vector
// product) composes the same formulas from differentiable operators on the parameters as given
// (the block-sparse operators are differentiable to any order, block_sparse_autograd.cpp): the
// fused kernels' results and the forward's cast copies carry no graph. With gamma_is_logit the
// tensor in gamma's place is the mix's logit l, gamma = sigmoid(l): the operators below take l
// and a flag, the kernels apply the sigmoid as they read it, and the parameter-gradient pass
// returns l's gradient, so neither the sigmoid nor its gradient is a launch of its own.
#include "ops/pixelfly_linear_autograd.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "pixelfly/ops/block_sparse_ops.h"
#include "pixelfly/ops/pixelfly_linear_ops.h"
#include "ops/input_checks.h"
#include "ops/shapes.h"
#include "ops/side_stream.h"
#include "ops/thin_matmul.h"

namespace pixelfly::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// t in `dtype`, contiguous, with zeros appended along `dim` up to `size`: one copy, and one fill
// when zeros are added.
at::Tensor operand(const at::Tensor& t, at::ScalarType dtype, int64_t dim, int64_t size) {
  if (size == t.size(dim)) return t.to(dtype, /*non_blocking=*/false, /*copy=*/false, at::MemoryFormat::Contiguous);
  std::vector<int64_t> sizes = t.sizes().vec();
  sizes[dim] = size;
  at::Tensor out = at::empty(sizes, t.options().dtype(dtype));
  out.narrow(dim, 0, t.size(dim)).copy_(t);
  out.narrow(dim, t.size(dim), size - t.size(dim)).zero_();
  return out;
}

class PixelflyLinearFunction : public torch::autograd::Function<PixelflyLinearFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& values_in,
                            const Layout& layout, const at::Tensor& u_in, const at::Tensor& v_in,
                            const at::Tensor& gamma, const c10::optional<at::Tensor>& bias_in, bool gamma_is_logit) {
    const bool has_bias = bias_in.has_value() && bias_in->defined();
    const at::ScalarType dtype = x.scalar_type();
    const int64_t rank = v_in.size(1);
    const int64_t r = x.is_cuda() ? (rank + 7) / 8 * 8 : rank;
    // u (out, r) and v (in, r), each row of whole 16-byte units.
    const at::Tensor values = values_in.to(dtype), u = operand(u_in, dtype, 1, r), v = operand(v_in, dtype, 1, r);
    const c10::optional<at::Tensor> bias = has_bias ? c10::optional<at::Tensor>(bias_in->to(dtype)) : c10::nullopt;
    const at::Tensor x_rows = row_view(x);
    const at::Tensor projected = thin_matmul_sector_rows(x_rows, v).reshape(sizes_with_last(x, r));  // x v
    at::Tensor y = mixed_linear(x, values, layout, gamma, projected, u, bias, gamma_is_logit);
    // The parameters as given too, for a backward that records its graph (no copies: references).
    ctx->save_for_backward({x, values, u, v, gamma, projected, values_in, u_in, v_in});
    ctx->saved_data["layout"] = layout;
    ctx->saved_data["has_bias"] = has_bias;
    ctx->saved_data["gamma_is_logit"] = gamma_is_logit;
    ctx->saved_data["rank"] = rank;
    // The dtypes of the tensor arguments (x, values, u, v, gamma, bias), for their gradients.
    ctx->saved_data["dtypes"] = std::vector<int64_t>{
        static_cast<int64_t>(dtype), static_cast<int64_t>(values_in.scalar_type()),
        static_cast<int64_t>(u_in.scalar_type()), static_cast<int64_t>(v_in.scalar_type()),
        static_cast<int64_t>(gamma.scalar_type()), static_cast<int64_t>(has_bias ? bias_in->scalar_type() : dtype)};
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &values = saved[1], &u = saved[2], &v = saved[3], &gamma = saved[4],
                     &projected = saved[5];
    const Layout layout = ctx->saved_data["layout"].toCustomClass<LayoutHandle>();
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    const bool logit = ctx->saved_data["gamma_is_logit"].toBool();
    const int64_t rank = ctx->saved_data["rank"].toInt();
    const auto dtypes = ctx->saved_data["dtypes"].toIntVector();
    // needs_input_grad counts the tensor arguments given: x 0, values 1, u 2, v 3, gamma 4, bias 5.
    auto needed = [&](size_t i) { return (i < 5 || has_bias) && ctx->needs_input_grad(i); };
    // A parameter's gradient when asked for, in the parameter's dtype.
    auto gradient = [&](size_t i, const at::Tensor& grad) {
      return needed(i) ? grad.to(static_cast<at::ScalarType>(dtypes[i])) : at::Tensor();
    };
    if (at::GradMode::is_enabled()) {
      return differentiable_backward(grad_outputs[0], x, saved[6], layout, saved[7], saved[8], gamma, logit, needed,
                                     gradient);
    }
    const at::Tensor dy = grad_outputs[0].contiguous();
    const bool parameters = needed(1) || needed(2) || needed(3) || needed(4) || needed(5);
    at::Tensor dy_u, product, weight_sums;  // dy u (..., r); dy^T [x v | 1]; dy^T x on the blocks
    at::Tensor grad_x, grad_values, grad_u, grad_v, grad_gamma, grad_bias;
    auto grad_input = [&] { grad_x = mixed_linear_grad_input(dy, values, layout, gamma, dy_u, v.t(), logit); };
    auto grad_params = [&] {
      std::tie(grad_values, grad_u, grad_v, grad_gamma, grad_bias) =
          pixelfly_linear_grad_params(dy, x, values, layout, u, gamma, product, dy_u, has_bias, weight_sums, logit);
    };
    if (parameters) {
      if (grad_weight_and_low_rank_products_is_one_pass(x, layout, u.size(1))) {
        std::tie(dy_u, product, weight_sums) = grad_weight_and_low_rank_products(dy, x, layout, u, projected, has_bias);
      } else {
        std::tie(dy_u, product) = low_rank_grad_products(dy, u, projected, has_bias);
      }
      if (needed(0)) {
        // The two passes share no result: side by side each fills the other's last wave (the
        // layer's step 1.03-1.05x faster at the paper's MLP shapes, docs/perf.md version 30).
        run_beside(dy.device(), grad_params, grad_input, {&grad_values, &grad_u, &grad_v, &grad_gamma, &grad_bias});
      } else {
        grad_params();
      }
    } else if (needed(0)) {
      dy_u = thin_matmul(row_view(dy), u).reshape(sizes_with_last(dy, u.size(1)));
      grad_input();
    }
    // u's and v's gradients without their padding columns.
    auto unpadded = [&](const at::Tensor& grad) { return grad.defined() ? grad.narrow(1, 0, rank) : grad; };
    return {grad_x, gradient(1, grad_values), at::Tensor(), gradient(2, unpadded(grad_u)),
            gradient(3, unpadded(grad_v)), gradient(4, grad_gamma), gradient(5, grad_bias), at::Tensor()};
  }

 private:
  // The gradients as differentiable operators of dy, x and the parameters as given (values_in,
  // u_in, v_in in their own dtypes, cast to x's here; gamma_in, or its logit), for a backward that
  // records its graph.
  template <typename Needed, typename Gradient>
  static variable_list differentiable_backward(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& values_in,
                                               const Layout& layout, const at::Tensor& u_in, const at::Tensor& v_in,
                                               const at::Tensor& gamma_in, bool logit, const Needed& needed,
                                               const Gradient& gradient) {
    const at::ScalarType dtype = x.scalar_type();
    const at::ScalarType sums = dtype == at::kDouble ? at::kDouble : at::kFloat;  // grad_gamma's sums
    const at::Tensor values = values_in.to(dtype), u = u_in.to(dtype), v = v_in.to(dtype);
    const at::Tensor gamma = logit ? at::sigmoid(gamma_in) : gamma_in;
    const at::Tensor dy_rows = row_view(dy), x_rows = row_view(x), low = 1 - gamma;
    const at::Tensor dy_u = needed(0) || needed(3) ? dy_rows.matmul(u) : at::Tensor();  // (tokens, r)
    at::Tensor grad_x, grad_values, grad_u, grad_v, grad_gamma, grad_bias;
    if (needed(0)) {
      grad_x = gamma * block_sparse_linear_grad_input(dy, values, layout) +
               low * dy_u.matmul(v.t()).reshape(x.sizes());
    }
    const at::Tensor dw = needed(1) || needed(4) ? block_sparse_linear_grad_weight(dy, x, layout) : at::Tensor();
    const at::Tensor dy_xv = needed(2) || needed(4) ? dy_rows.t().matmul(x_rows.matmul(v)) : at::Tensor();  // (out, r)
    if (needed(1)) grad_values = gamma * dw;
    if (needed(2)) grad_u = low * dy_xv;
    if (needed(3)) grad_v = low * x_rows.t().matmul(dy_u);
    if (needed(4)) {
      grad_gamma = (dw.to(sums) * values.to(sums)).sum() - (dy_xv.to(sums) * u.to(sums)).sum();
      if (logit) grad_gamma = grad_gamma * gamma * low;  // the logit's: sigmoid' = gamma (1 - gamma)
    }
    if (needed(5)) grad_bias = dy_rows.sum(0);
    return {grad_x, gradient(1, grad_values), at::Tensor(), gradient(2, grad_u), gradient(3, grad_v),
            gradient(4, grad_gamma), gradient(5, grad_bias), at::Tensor()};
  }
};

// The operator's entry point: one dtype for the activations and every parameter but gamma.
at::Tensor pixelfly_linear_autograd(const at::Tensor& x, const at::Tensor& values, const Layout& layout,
                                    const at::Tensor& u, const at::Tensor& v, const at::Tensor& gamma,
                                    const c10::optional<at::Tensor>& bias, bool gamma_is_logit) {
  constexpr const char* op = "pixelfly::pixelfly_linear";
  check_same_dtype(op, values, "values", x, "x");
  check_same_dtype(op, u, "u", x, "x");
  check_same_dtype(op, v, "v", x, "x");
  if (bias.has_value() && bias->defined()) check_same_dtype(op, *bias, "bias", x, "x");
  return pixelfly_linear_function(x, values, layout, u, v, gamma, bias, gamma_is_logit);
}

}  // namespace

at::Tensor pixelfly_linear_function(const at::Tensor& x, const at::Tensor& values, const Layout& layout,
                                    const at::Tensor& u, const at::Tensor& v, const at::Tensor& gamma,
                                    const c10::optional<at::Tensor>& bias, bool gamma_is_logit) {
  TORCH_CHECK(gamma.dim() == 0, "pixelfly::pixelfly_linear: gamma must be a 0-d tensor, got shape ", gamma.sizes());
  TORCH_CHECK(u.dim() == 2 && v.dim() == 2 && u.size(1) == v.size(1) && u.size(0) == layout->out_features() &&
                  v.size(0) == layout->in_features(),
              "pixelfly::pixelfly_linear: u must be (out_features, r) = (", layout->out_features(),
              ", r) and v (in_features, r) = (", layout->in_features(), ", r), got ", u.sizes(), " and ", v.sizes());
  return PixelflyLinearFunction::apply(x, values, layout, u, v, gamma, bias, gamma_is_logit);
}

at::Tensor pixelfly_linear(const at::Tensor& x, const at::Tensor& values, const Layout& layout, const at::Tensor& u,
                           const at::Tensor& v, const at::Tensor& gamma, const c10::optional<at::Tensor>& bias,
                           bool gamma_is_logit) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("pixelfly::pixelfly_linear", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const Layout&, const at::Tensor&,
                                               const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&,
                                               bool)>();
  return op.call(x, values, layout, u, v, gamma, bias, gamma_is_logit);
}

}  // namespace pixelfly::ops

TORCH_LIBRARY_IMPL(pixelfly, CompositeImplicitAutograd, m) {
  m.impl("pixelfly_linear", &pixelfly::ops::pixelfly_linear_autograd);
}
