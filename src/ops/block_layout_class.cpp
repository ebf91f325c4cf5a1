// LayoutHandle: the layout object operators take, with its per-device index caches.
#include "pixelfly/ops/layout_handle.h"

#include <ATen/ATen.h>

#include "pixelfly/pattern/flat_butterfly.h"

namespace pixelfly::ops {

LayoutHandle::LayoutHandle(BlockLayout layout) : layout_(std::move(layout)) {}

at::Tensor LayoutHandle::flat_block_positions(const at::Device& device) const {
  std::lock_guard<std::mutex> lock(cache_mutex_);
  const std::string key = device.str();
  auto it = positions_by_device_.find(key);
  if (it != positions_by_device_.end()) return it->second;
  at::Tensor positions = at::empty({layout_.nnz()}, at::kLong);
  int64_t* out = positions.data_ptr<int64_t>();
  for (int64_t r = 0; r < layout_.block_rows(); ++r) {
    for (int64_t i = layout_.row_ptr()[r]; i < layout_.row_ptr()[r + 1]; ++i) {
      out[i] = r * layout_.block_cols() + layout_.col_idx()[i];
    }
  }
  positions = positions.to(device);
  positions_by_device_.emplace(key, positions);
  return positions;
}

at::Tensor LayoutHandle::row_ptr() const {
  return at::tensor(layout_.row_ptr(), at::kLong);
}

at::Tensor LayoutHandle::col_idx() const {
  return at::tensor(layout_.col_idx(), at::kLong);
}

Layout make_layout(BlockLayout layout) {
  return c10::make_intrusive<LayoutHandle>(std::move(layout));
}

Layout make_flat_butterfly_layout(int64_t out_features, int64_t in_features, int64_t butterfly_size,
                                  int64_t factors, int64_t block) {
  return make_layout(flat_butterfly_layout({out_features, in_features, butterfly_size, factors, block}));
}

}  // namespace pixelfly::ops
