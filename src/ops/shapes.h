// Shape helpers shared by the operator backends: activations of any leading shape are run as
// (tokens, features) matrices and handed back in the caller's shape.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace pixelfly::ops {

// (..., features) -> (tokens, features), a view where the strides allow one.
inline at::Tensor row_view(const at::Tensor& t) { return t.reshape({-1, t.size(-1)}); }
// (..., features) -> contiguous (tokens, features); a view when already contiguous.
inline at::Tensor as_rows(const at::Tensor& t) { return row_view(t).contiguous(); }

// The sizes of t with the last one replaced.
inline std::vector<int64_t> sizes_with_last(const at::Tensor& t, int64_t last) {
  std::vector<int64_t> sizes(t.sizes().begin(), t.sizes().end());
  sizes.back() = last;
  return sizes;
}

}  // namespace pixelfly::ops
