// LayoutHandle: the layout object operators take, with its per-device index caches.
#include "pixelfly/ops/layout_handle.h"

#include <ATen/ATen.h>

#include "pixelfly/pattern/flat_butterfly.h"
#include "pixelfly/pattern/tile_schedule.h"

namespace pixelfly::ops {

LayoutHandle::LayoutHandle(BlockLayout layout) : layout_(std::move(layout)) {}

const DeviceIndex& LayoutHandle::device_index(const at::Device& device) const {
  std::lock_guard<std::mutex> lock(cache_mutex_);
  const std::string key = device.str();
  auto it = index_by_device_.find(key);
  if (it != index_by_device_.end()) return it->second;
  std::vector<int64_t> block_row(layout_.nnz()), flat(layout_.nnz());
  for (int64_t r = 0; r < layout_.block_rows(); ++r) {
    for (int64_t i = layout_.row_ptr()[r]; i < layout_.row_ptr()[r + 1]; ++i) {
      block_row[i] = r;
      flat[i] = r * layout_.block_cols() + layout_.col_idx()[i];
    }
  }
  auto on_device = [&device](const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).to(device); };
  DeviceIndex index;
  index.row_ptr = on_device(layout_.row_ptr());
  index.col_idx = on_device(layout_.col_idx());
  index.col_ptr = on_device(layout_.col_ptr());
  index.row_idx = on_device(layout_.row_idx());
  index.transpose_block = on_device(layout_.transpose_block());
  index.block_row = on_device(block_row);
  index.flat_positions = on_device(flat);
  if (kKernelTileFeatures % layout_.block() == 0) {
    const TileSchedule& schedule = tile_schedule();
    std::vector<int64_t> rows, cols, pieces;
    for (const LineGroup& g : schedule.row_groups) {
      rows.insert(rows.end(), {g.first, g.count, g.index_offset, g.length, g.block_offset});
    }
    for (const LineGroup& g : schedule.col_groups) {
      cols.insert(cols.end(), {g.first, g.count, g.index_offset, g.length, g.block_offset});
    }
    for (const GradientPiece& p : schedule.gradient_pieces) {
      pieces.insert(pieces.end(), {p.row_first, p.rows, p.column_offset, p.cols, p.block_offset});
    }
    index.row_groups = on_device(rows).view({-1, 5});
    index.row_index = on_device(schedule.row_index);
    index.row_blocks = on_device(schedule.row_blocks);
    index.col_groups = on_device(cols).view({-1, 5});
    index.col_index = on_device(schedule.col_index);
    index.col_blocks = on_device(schedule.col_blocks);
    index.gradient_pieces = on_device(pieces).view({-1, 5});
    index.gradient_columns = on_device(schedule.gradient_columns);
    index.gradient_blocks = on_device(schedule.gradient_blocks);
    index.row_tile_features = schedule.row_tile_features;
    index.col_tile_features = schedule.col_tile_features;
  }
  return index_by_device_.emplace(key, std::move(index)).first->second;
}

const TileSchedule& LayoutHandle::tile_schedule() const {
  std::call_once(schedule_once_, [this] { schedule_ = make_tile_schedule(layout_); });
  return schedule_;
}

at::Tensor LayoutHandle::cached_tensor(const std::string& key, const std::function<at::Tensor()>& build) const {
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (auto it = tensor_by_key_.find(key); it != tensor_by_key_.end()) return it->second;
  at::Tensor built = build();
  if (built.defined()) tensor_by_key_.emplace(key, built);
  return built;
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
