// The Pixelfly layer as operators: the block-sparse product, its low-rank partner and the
// mix in one pass over the activations where the GPU kernels allow it.
//
//   pixelfly::pixelfly_linear(x, values, layout, u, v, gamma, bias?)          differentiable
//       y = gamma * x W^T + (1 - gamma) * (x v) u^T + bias
//   pixelfly::mixed_linear(x, values, layout, scale, a, b, bias?)
//       y = scale * x W^T + a b^T + bias              a: (..., r), b: (out, r)
//   pixelfly::mixed_linear_grad_input(grad_y, values, layout, scale, a, b_t)
//       dx = scale * grad_y W + a b_t                 a: (..., r), b_t: (r, in)
// gamma and scale are 0-d tensors (kept on the device: no host synchronisation). W, values and
// layout are as in block_sparse_ops.h; u: (out, r), v: (in, r), bias: (out).
// On CUDA with float16/bfloat16, feature counts and r multiples of 8 and blocks 16-128, the mixed
// operators are single fused kernels; elsewhere they are composed from the block-sparse
// operators and matmul, with the same results.
#pragma once

#include <ATen/core/Tensor.h>

#include "pixelfly/ops/layout_handle.h"

namespace pixelfly::ops {

at::Tensor pixelfly_linear(const at::Tensor& x, const at::Tensor& values, const Layout& layout, const at::Tensor& u,
                           const at::Tensor& v, const at::Tensor& gamma, const c10::optional<at::Tensor>& bias);

at::Tensor mixed_linear(const at::Tensor& x, const at::Tensor& values, const Layout& layout, const at::Tensor& scale,
                        const at::Tensor& low_rank_a, const at::Tensor& low_rank_b,
                        const c10::optional<at::Tensor>& bias);

at::Tensor mixed_linear_grad_input(const at::Tensor& grad_y, const at::Tensor& values, const Layout& layout,
                                   const at::Tensor& scale, const at::Tensor& low_rank_a,
                                   const at::Tensor& low_rank_b_t);

// The composed (unfused) versions of the two mixed operators, for backends without a fused
// kernel; any device.
at::Tensor mixed_linear_composed(const at::Tensor& x, const at::Tensor& values, const Layout& layout,
                                 const at::Tensor& scale, const at::Tensor& low_rank_a, const at::Tensor& low_rank_b,
                                 const c10::optional<at::Tensor>& bias);
at::Tensor mixed_linear_grad_input_composed(const at::Tensor& grad_y, const at::Tensor& values, const Layout& layout,
                                            const at::Tensor& scale, const at::Tensor& low_rank_a,
                                            const at::Tensor& low_rank_b_t);

}  // namespace pixelfly::ops
