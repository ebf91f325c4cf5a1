// Conversions between (values, layout) and the dense matrix they represent, written with
// differentiable ATen operations so they run on any device and carry gradients; they are the
// reference the fast operators are tested against and what dense_equivalent() returns.
#include <ATen/ATen.h>

#include "ops/input_checks.h"
#include "pixelfly/ops/block_sparse_ops.h"

namespace pixelfly::ops {

at::Tensor block_sparse_to_dense(const at::Tensor& values, const Layout& layout) {
  TORCH_CHECK(layout, "block_sparse_to_dense: layout is null");
  check_values("block_sparse_to_dense", values, layout, values, "values");
  const BlockLayout& l = layout->layout();
  const int64_t b = l.block(), rows = l.block_rows(), cols = l.block_cols();
  at::Tensor all_blocks = at::zeros({rows * cols, b, b}, values.options());
  all_blocks = all_blocks.index_copy(0, layout->device_index(values.device()).flat_positions, values);
  return all_blocks.view({rows, cols, b, b})
      .permute({0, 2, 1, 3})
      .reshape({rows * b, cols * b})
      .narrow(0, 0, l.out_features())
      .narrow(1, 0, l.in_features());
}

at::Tensor dense_to_block_sparse(const at::Tensor& dense, const Layout& layout) {
  TORCH_CHECK(layout, "dense_to_block_sparse: layout is null");
  const BlockLayout& l = layout->layout();
  TORCH_CHECK(dense.dim() == 2 && dense.size(0) == l.out_features() && dense.size(1) == l.in_features(),
              "dense_to_block_sparse: dense must have shape (out_features, in_features) = (",
              l.out_features(), ", ", l.in_features(), "), got ", dense.sizes());
  const int64_t b = l.block(), rows = l.block_rows(), cols = l.block_cols();
  const at::Tensor padded = at::constant_pad_nd(
      dense, {0, cols * b - l.in_features(), 0, rows * b - l.out_features()}, 0);
  return padded.view({rows, b, cols, b})
      .permute({0, 2, 1, 3})
      .reshape({rows * cols, b, b})
      .index_select(0, layout->device_index(dense.device()).flat_positions);
}

}  // namespace pixelfly::ops
