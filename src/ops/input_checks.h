// Argument checks shared by every backend of the block-sparse operators: each failure names
// the operator, the argument, the value and what was expected.
#pragma once

#include <ATen/core/Tensor.h>

#include "pixelfly/ops/layout_handle.h"

namespace pixelfly::ops {

// The whole argument check of each block-sparse operator, shared by every backend; each returns
// the layout (after checking it is not null).
const BlockLayout& check_forward_args(const char* op, const at::Tensor& x, const at::Tensor& values, const Layout& layout);
const BlockLayout& check_grad_input_args(const char* op, const at::Tensor& grad_y, const at::Tensor& values,
                                         const Layout& layout);
const BlockLayout& check_grad_weight_args(const char* op, const at::Tensor& grad_y, const at::Tensor& x,
                                          const Layout& layout);

// `features_name`-sized last dimension: x.size(-1) == expected.
void check_features(const char* op, const char* name, const at::Tensor& t, int64_t expected,
                    const char* expected_name);
// a and b of one dtype.
void check_same_dtype(const char* op, const at::Tensor& a, const char* a_name, const at::Tensor& b,
                      const char* b_name);
// values is (nnz, b, b) of the layout, same dtype and device as `other`.
void check_values(const char* op, const at::Tensor& values, const Layout& layout,
                  const at::Tensor& other, const char* other_name);
// Two activation tensors with the same leading shape, dtype and device.
void check_same_rows(const char* op, const at::Tensor& a, const char* a_name, const at::Tensor& b,
                     const char* b_name);
// The extra arguments of the mixed operators: scale 0-d; low_rank_a (..., r) with the leading
// shape of `activations`; low_rank_b of shape (b_rows, b_cols) where `b_rank_dim` (0 or 1) is r;
// bias (bias_size) when given. All on the activations' device and dtype (scale: any floating dtype).
void check_mixed_arguments(const char* op, const at::Tensor& activations, const at::Tensor& scale,
                           const at::Tensor& low_rank_a, const at::Tensor& low_rank_b, int64_t b_rows, int64_t b_cols,
                           int b_rank_dim, const c10::optional<at::Tensor>& bias, int64_t bias_size);
// The arguments of low_rank_grad_products (pixelfly_linear_ops.h): grad_y (..., out), u (out, r)
// and projected (..., w) of one dtype and device.
void check_low_rank_grad_product_args(const char* op, const at::Tensor& grad_y, const at::Tensor& u,
                                      const at::Tensor& projected);
// The arguments of pixelfly_linear_grad_params (pixelfly_linear_ops.h); returns the rank r.
int64_t check_parameter_gradient_args(const char* op, const at::Tensor& grad_y, const at::Tensor& x,
                                      const at::Tensor& values, const Layout& layout, const at::Tensor& u,
                                      const at::Tensor& gamma, const at::Tensor& product,
                                      const at::Tensor& grad_projected, bool bias,
                                      const c10::optional<at::Tensor>& grad_weight_sums);
// The arguments of grad_weight_and_low_rank_products (pixelfly_linear_ops.h); returns the rank r.
int64_t check_grad_weight_and_low_rank_args(const char* op, const at::Tensor& grad_y, const at::Tensor& x,
                                            const Layout& layout, const at::Tensor& u, const at::Tensor& projected);
// Dimensions that a 32-bit BLAS or kernel index must hold.
void check_int32_extent(const char* op, const char* what, int64_t value);

}  // namespace pixelfly::ops
