// Block-sparse linear operators on a weight stored as its nonzero blocks.
//
// A weight W (out x in) with layout L is stored as `values` of shape (L.nnz(), b, b): block i is
// W[r*b : (r+1)*b, c*b : (c+1)*b] for the i-th (r, c) of L in CSR order (padding beyond out/in
// is part of the blocks and is ignored). Inputs have any leading shape (..., features).
// CPU: float32, float64, bfloat16 (bfloat16 accumulates in float32).
// Every mismatch of shape, dtype, device or layout throws c10::Error naming the argument.
//
// The operators are registered with LibTorch's dispatcher (namespace `pixelfly`), so the same
// op serves C++, autograd and Python (torch.ops.load_library("libpixelfly.so")):
//   pixelfly::block_sparse_linear(x, values, layout)              y  = x W^T
//   pixelfly::block_sparse_linear_grad_input(grad_y, values, layout)  dx = dy W
//   pixelfly::block_sparse_linear_grad_weight(grad_y, x, layout)      dW = dy^T x on the blocks
// All three are differentiable to any order (each one's derivatives are the others), so a
// backward with create_graph gives correct gradients of gradients.
#pragma once

#include <ATen/core/Tensor.h>

#include "pixelfly/ops/layout_handle.h"

namespace pixelfly::ops {

// y (..., out) = x (..., in) . W^T. Differentiable in x and values, to any order.
at::Tensor block_sparse_linear(const at::Tensor& x, const at::Tensor& values, const Layout& layout);

// dx (..., in) = grad_y (..., out) . W.
at::Tensor block_sparse_linear_grad_input(const at::Tensor& grad_y, const at::Tensor& values,
                                          const Layout& layout);

// dW (nnz, b, b) = grad_y^T . x restricted to the nonzero blocks (zeros in padding).
at::Tensor block_sparse_linear_grad_weight(const at::Tensor& grad_y, const at::Tensor& x,
                                           const Layout& layout);

// The dense (out x in) matrix that (values, layout) represent. Differentiable; any device.
at::Tensor block_sparse_to_dense(const at::Tensor& values, const Layout& layout);

// The blocks of a dense (out x in) matrix that the layout keeps: (nnz, b, b). Differentiable.
at::Tensor dense_to_block_sparse(const at::Tensor& dense, const Layout& layout);

}  // namespace pixelfly::ops
