// The Pixelfly layer as operators: the block-sparse product, its low-rank partner and the
// mix in one pass over the activations where the GPU kernels allow it.
//
//   pixelfly::pixelfly_linear(x, values, layout, u, v, gamma, bias?, *, gamma_is_logit=false)
//       y = gamma * x W^T + (1 - gamma) * (x v) u^T + bias     differentiable (any order)
//       With gamma_is_logit the tensor passed is the mix's logit l and gamma = sigmoid(l), applied
//       inside the operator (on the GPU by the kernels that read gamma: no launch for the sigmoid
//       or its gradient); the gradient returned for it is l's.
//   pixelfly::mixed_linear(x, values, layout, scale, a, b, bias?, *, scale_is_logit=false)
//       y = scale * x W^T + (1 - scale) * a b^T + bias    a: (..., r), b: (out, r)
//   pixelfly::mixed_linear_grad_input(grad_y, values, layout, scale, a, b_t, *, scale_is_logit=false)
//       dx = scale * grad_y W + (1 - scale) * a b_t       a: (..., r), b_t: (r, in)
//       (with scale_is_logit, scale = sigmoid of the tensor passed, as for gamma above)
//   pixelfly::low_rank_grad_products(grad_y, u, projected, ones_column=false)
//       -> (grad_projected, product)
//       grad_projected = grad_y u (..., r) in grad_y's dtype, and product = grad_y^T projected
//       (out, w) in float32 (float64 for float64), with ones_column grad_y^T [projected | 1]
//       (out, w + 1), its last column grad_y's sum over the tokens: the two products of
//       pixelfly_linear's backward that read all of grad_y, one pass over it on Hopper.
//       pixelfly_linear passes projected = x v (w = r), so that product holds u's raw gradient
//       and, with a bias, the bias gradient in column r.
//   pixelfly::grad_weight_and_low_rank_products(grad_y, x, layout, u, projected, ones_column=false)
//       -> (grad_projected, product, grad_weight_sums): the two products above (projected of
//       width r) and dW = grad_y^T x on the blocks (nnz, b, b) in float32 (float64 for float64).
//   pixelfly::grad_weight_and_low_rank_products_is_one_pass(x, layout, rank) -> bool: whether
//       that is one pass over grad_y here: on Hopper, where every row group of the layout's weight
//       gradient is one piece (the paper's fc1 shapes) and rank is a multiple of 8 up to 32, the
//       weight-gradient kernel computes both low-rank products from the stages of grad_y it reads
//       anyway. pixelfly_linear's backward then runs it instead of low_rank_grad_products.
//   pixelfly::pixelfly_linear_grad_params(grad_y, x, values, layout, u, gamma, product,
//                                         grad_projected, bias, grad_weight_sums=None, *,
//                                         gamma_is_logit=false)
//       -> (grad_values, grad_u, grad_v, grad_gamma, grad_bias): pixelfly_linear's parameter
//       gradients from the two products above, grad_values = gamma * dW (dW = grad_y^T x on the
//       blocks, computed here unless grad_weight_sums holds it), grad_u = (1 - gamma)
//       product[:, :r], grad_v = (1 - gamma) x^T grad_projected, grad_gamma = <dW, W> -
//       <product[:, :r], u>, grad_bias = product[:, r] (the sum of grad_y over the tokens;
//       undefined without bias). With gamma_is_logit, gamma = sigmoid(l) of the tensor l passed
//       and the fourth result is l's gradient, grad_gamma * gamma (1 - gamma).
// Only pixelfly_linear is differentiable; the others are its building blocks, without
// derivatives: where autograd records, an input that needs a gradient stops them with a message.
// gamma and scale are 0-d tensors (kept on the device: no host synchronisation). W, values and
// layout are as in block_sparse_ops.h; u: (out, r), v: (in, r), bias: (out).
// On CUDA with float16/bfloat16, feature counts multiples of 8 and blocks 16-128 on Hopper, the
// mixed operators and low_rank_grad_products are single kernels and the parameter gradients one
// weight-gradient kernel, one thin matmul and one finishing kernel; elsewhere they are composed
// from the block-sparse operators and matmul, with the same results.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

#include "pixelfly/ops/layout_handle.h"

namespace pixelfly::ops {

at::Tensor pixelfly_linear(const at::Tensor& x, const at::Tensor& values, const Layout& layout, const at::Tensor& u,
                           const at::Tensor& v, const at::Tensor& gamma, const c10::optional<at::Tensor>& bias,
                           bool gamma_is_logit = false);

at::Tensor mixed_linear(const at::Tensor& x, const at::Tensor& values, const Layout& layout, const at::Tensor& scale,
                        const at::Tensor& low_rank_a, const at::Tensor& low_rank_b,
                        const c10::optional<at::Tensor>& bias, bool scale_is_logit = false);

at::Tensor mixed_linear_grad_input(const at::Tensor& grad_y, const at::Tensor& values, const Layout& layout,
                                   const at::Tensor& scale, const at::Tensor& low_rank_a,
                                   const at::Tensor& low_rank_b_t, bool scale_is_logit = false);

std::tuple<at::Tensor, at::Tensor> low_rank_grad_products(const at::Tensor& grad_y, const at::Tensor& u,
                                                          const at::Tensor& projected, bool ones_column = false);

std::tuple<at::Tensor, at::Tensor, at::Tensor> grad_weight_and_low_rank_products(const at::Tensor& grad_y,
                                                                                 const at::Tensor& x,
                                                                                 const Layout& layout,
                                                                                 const at::Tensor& u,
                                                                                 const at::Tensor& projected,
                                                                                 bool ones_column = false);

bool grad_weight_and_low_rank_products_is_one_pass(const at::Tensor& x, const Layout& layout, int64_t rank);

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> pixelfly_linear_grad_params(
    const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& values, const Layout& layout, const at::Tensor& u,
    const at::Tensor& gamma, const at::Tensor& product, const at::Tensor& grad_projected, bool bias,
    const c10::optional<at::Tensor>& grad_weight_sums = c10::nullopt, bool gamma_is_logit = false);

// The composed (unfused) versions of the mixed operators, the low-rank products and the parameter
// gradients, for backends without a fused kernel; any device.
at::Tensor mixed_linear_composed(const at::Tensor& x, const at::Tensor& values, const Layout& layout,
                                 const at::Tensor& scale, const at::Tensor& low_rank_a, const at::Tensor& low_rank_b,
                                 const c10::optional<at::Tensor>& bias, bool scale_is_logit);
at::Tensor mixed_linear_grad_input_composed(const at::Tensor& grad_y, const at::Tensor& values, const Layout& layout,
                                            const at::Tensor& scale, const at::Tensor& low_rank_a,
                                            const at::Tensor& low_rank_b_t, bool scale_is_logit);
std::tuple<at::Tensor, at::Tensor> low_rank_grad_products_composed(const at::Tensor& grad_y, const at::Tensor& u,
                                                                   const at::Tensor& projected, bool ones_column);
std::tuple<at::Tensor, at::Tensor, at::Tensor> grad_weight_and_low_rank_products_composed(
    const at::Tensor& grad_y, const at::Tensor& x, const Layout& layout, const at::Tensor& u,
    const at::Tensor& projected, bool ones_column);
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> pixelfly_linear_grad_params_composed(
    const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& values, const Layout& layout, const at::Tensor& u,
    const at::Tensor& gamma, const at::Tensor& product, const at::Tensor& grad_projected, bool bias,
    const c10::optional<at::Tensor>& grad_weight_sums, bool gamma_is_logit);

}  // namespace pixelfly::ops
