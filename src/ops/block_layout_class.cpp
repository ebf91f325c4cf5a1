// LayoutHandle: the layout object operators take, with its per-device index caches.
#include "pixelfly/ops/layout_handle.h"

#include <ATen/ATen.h>

#include <array>

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
  // Schedule entries (line groups, weight-gradient pieces) as int64 rows of their five fields.
  auto records_on_device = [&](const auto& entries, auto fields) {
    std::vector<int64_t> records;
    for (const auto& e : entries) {
      const std::array<int64_t, 5> f = fields(e);
      records.insert(records.end(), f.begin(), f.end());
    }
    return on_device(records).view({-1, 5});
  };
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
    auto grouping_on_device = [&](const LineGrouping& g) {
      DeviceIndex::Grouping d;
      if (g.tile_features == 0) return d;
      d.groups = records_on_device(g.groups, [](const LineGroup& l) {
        return std::array<int64_t, 5>{l.first, l.count, l.index_offset, l.length, l.block_offset};
      });
      d.index = on_device(g.index);
      d.blocks = on_device(g.blocks);
      d.tile_features = g.tile_features;
      return d;
    };
    index.rows = grouping_on_device(schedule.rows);
    index.cols = grouping_on_device(schedule.cols);
    index.wide_rows = grouping_on_device(schedule.wide_rows);
    index.wide_cols = grouping_on_device(schedule.wide_cols);
    index.gradient_pieces = records_on_device(schedule.gradient_pieces, [](const GradientPiece& p) {
      return std::array<int64_t, 5>{p.row_first, p.rows, p.column_offset, p.cols, p.block_offset};
    });
    index.gradient_columns = on_device(schedule.gradient_columns);
    index.gradient_blocks = on_device(schedule.gradient_blocks);
    index.gradient_fold_sets = on_device(schedule.gradient_fold_sets);
    index.gradient_column_owner = on_device(schedule.gradient_column_owner);
  }
  return index_by_device_.emplace(key, std::move(index)).first->second;
}

const DeviceIndex::Grouping& DeviceIndex::line_grouping(const TileSchedule& schedule, bool by_columns,
                                                        int64_t rank) const {
  const bool wide = pixelfly::line_grouping(schedule, by_columns, rank).tile_features == kKernelWideTileFeatures;
  return by_columns ? (wide ? wide_cols : cols) : (wide ? wide_rows : rows);
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
