// LayoutHandle: a reference-counted, immutable BlockLayout that the pixelfly operators take as
// an argument (registered with LibTorch as torch.classes.pixelfly.BlockLayout, so Python can
// build and pass one too). It is built once per sparse weight and caches what kernels need per
// device, so nothing about the layout is rebuilt per call.
#pragma once

#include <torch/custom_class.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include "pixelfly/pattern/block_layout.h"
#include "pixelfly/pattern/tile_schedule.h"

namespace pixelfly::ops {

// The layout's index arrays as int64 tensors on one device, for kernels and conversions.
struct DeviceIndex {
  at::Tensor row_ptr;          // block_rows + 1
  at::Tensor col_idx;          // nnz
  at::Tensor col_ptr;          // block_cols + 1
  at::Tensor row_idx;          // nnz, transpose order
  at::Tensor transpose_block;  // nnz, transpose order -> CSR block index
  at::Tensor block_row;        // nnz, CSR order -> block row
  at::Tensor flat_positions;   // nnz, block_row * block_cols + block_col
  // The tile schedule of the tensor-core kernels (pattern/tile_schedule.h): each line grouping
  // and the weight-gradient pieces as int64 rows of 5, with their tables; undefined when the
  // block does not divide kKernelTileFeatures (and the wide groupings where it does not divide
  // kKernelWideTileFeatures).
  struct Grouping {
    at::Tensor groups, index, blocks;
    int64_t tile_features = 0;
  };
  Grouping rows, cols, wide_rows, wide_cols;
  at::Tensor gradient_pieces, gradient_columns, gradient_blocks, gradient_fold_sets, gradient_column_owner;
  // The device copy of line_grouping(schedule, by_columns, rank).
  const Grouping& line_grouping(const TileSchedule& schedule, bool by_columns, int64_t rank) const;
};

class LayoutHandle : public torch::CustomClassHolder {
 public:
  explicit LayoutHandle(BlockLayout layout);

  const BlockLayout& layout() const { return layout_; }

  // The index arrays on `device`: built on first use per device, then cached for the life of
  // the handle (thread-safe).
  const DeviceIndex& device_index(const at::Device& device) const;

  // The tensor-core kernels' tile schedule (pattern/tile_schedule.h) on the host: built on first
  // use, once for every device (thread-safe). Throws std::invalid_argument where the block does
  // not divide kKernelTileFeatures.
  const TileSchedule& tile_schedule() const;

  // A tensor that operators derive from the layout and keep for the life of the handle, under
  // `key` (which names the device and everything the tensor depends on): `build` runs on first
  // use (thread-safe); an undefined tensor from it is returned but not kept, so a later call
  // builds again. The CUDA operators keep their tile orders per token count here.
  at::Tensor cached_tensor(const std::string& key, const std::function<at::Tensor()>& build) const;

  // Accessors exposed to Python.
  int64_t out_features() const { return layout_.out_features(); }
  int64_t in_features() const { return layout_.in_features(); }
  int64_t block() const { return layout_.block(); }
  int64_t nnz() const { return layout_.nnz(); }
  double density() const { return layout_.density(); }
  at::Tensor row_ptr() const;
  at::Tensor col_idx() const;
  std::string to_text() const { return layout_.to_text(); }

 private:
  BlockLayout layout_;
  mutable std::once_flag schedule_once_;
  mutable TileSchedule schedule_;
  mutable std::mutex cache_mutex_;
  mutable std::map<std::string, DeviceIndex> index_by_device_;
  mutable std::map<std::string, at::Tensor> tensor_by_key_;
};

using Layout = c10::intrusive_ptr<LayoutHandle>;

// Convenience constructors.
Layout make_layout(BlockLayout layout);
Layout make_flat_butterfly_layout(int64_t out_features, int64_t in_features, int64_t butterfly_size,
                                  int64_t factors, int64_t block);

}  // namespace pixelfly::ops
