// Work lists for tensor-core kernels, derived once from a BlockLayout: the layout's merged dense
// tiles cut into pieces of at most `tile_features` x `tile_features` elements, so that each
// thread block computes one piece as a dense GEMM whose K loop walks whole blocks.
#pragma once

#include <cstdint>
#include <vector>

#include "pixelfly/pattern/block_layout.h"

namespace pixelfly {

// Consecutive block rows (forward) or block columns (grad_input) whose index lists are equal;
// `count` lines of `per_line` nonzero blocks each. For rows, the CSR position of block k of
// line i is `position + i * per_line + k`; for columns the same formula gives the position in
// the transpose index (BlockLayout::transpose_block maps it to the CSR block).
struct LineGroup {
  int64_t first = 0;
  int64_t count = 0;
  int64_t position = 0;
  int64_t per_line = 0;
};

// A dense rectangle of nonzero blocks (part of a merged tile) for the weight gradient: block
// (i, j) of it, 0 <= i < rows, 0 <= j < cols, is CSR block `base + i * row_stride + j`.
struct GradientPiece {
  int64_t row_begin = 0;
  int64_t rows = 0;
  int64_t col_begin = 0;
  int64_t cols = 0;
  int64_t base = 0;
  int64_t row_stride = 0;
};

// The tile width the CUDA tensor-core kernels compute per thread block.
constexpr int64_t kKernelTileFeatures = 128;

struct TileSchedule {
  std::vector<LineGroup> row_groups;     // covers every block row, empty ones included
  std::vector<LineGroup> col_groups;     // covers every block column, empty ones included
  std::vector<GradientPiece> gradient_pieces;  // covers every nonzero block once
};

// tile_features must be a positive multiple of layout.block(); groups and pieces span at most
// tile_features / block lines (blocks) per side.
TileSchedule make_tile_schedule(const BlockLayout& layout, int64_t tile_features);

}  // namespace pixelfly
