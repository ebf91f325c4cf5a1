// Work lists for the tensor-core kernels, derived once from a BlockLayout. Each thread block
// computes a tile of up to kKernelTileFeatures features (weight-gradient pieces:
// kKernelTileFeatures x kGradientPieceFeatures) as a dense GEMM:
//   forward     a group of consecutive block rows; K walks the union of their column lists,
//   grad_input  a group of consecutive block columns; K walks the union of their row lists,
//   grad_weight a row group and up to kGradientPieceFeatures of its union columns; K walks tokens.
// Where a line has no block at a position of the union, the kernel reads zeros (and writes
// nothing), so layouts whose cells do not align with tiles still fill whole tiles.
#pragma once

#include <cstdint>
#include <vector>

#include "pixelfly/pattern/block_layout.h"

namespace pixelfly {

// The tile width the CUDA tensor-core kernels compute per thread block.
constexpr int64_t kKernelTileFeatures = 128;
// Columns of a weight-gradient piece: two tiles wide, so that a piece reads its rows of dY once
// for twice the columns of X.
constexpr int64_t kGradientPieceFeatures = 2 * kKernelTileFeatures;

// Lines [first, first + count) computed together. Their union index list is
// index[index_offset .. index_offset + length) (ascending), and blocks[block_offset + i * length + k]
// is the CSR block of line i at union position k, or -1 when that line has none there.
struct LineGroup {
  int64_t first = 0;
  int64_t count = 0;
  int64_t index_offset = 0;
  int64_t length = 0;
  int64_t block_offset = 0;
};

// Weight-gradient work: block rows [row_first, row_first + rows) by the block columns
// columns[column_offset .. column_offset + cols); blocks[block_offset + i * cols + j] is the CSR
// block at (row i, column j), or -1.
struct GradientPiece {
  int64_t row_first = 0;
  int64_t rows = 0;
  int64_t column_offset = 0;
  int64_t cols = 0;
  int64_t block_offset = 0;
};

struct TileSchedule {
  std::vector<LineGroup> row_groups;  // covers every block row once, empty rows included
  std::vector<int64_t> row_index, row_blocks;
  std::vector<LineGroup> col_groups;  // covers every block column once, empty columns included
  std::vector<int64_t> col_index, col_blocks;
  std::vector<GradientPiece> gradient_pieces;  // covers every nonzero block once
  std::vector<int64_t> gradient_columns, gradient_blocks;
};

// Groups (and weight-gradient pieces) hold at most tile_features / block lines, pieces at most
// 2 * tile_features / block columns; tile_features must be a positive multiple of the block size
// (throws std::invalid_argument otherwise).
TileSchedule make_tile_schedule(const BlockLayout& layout, int64_t tile_features = kKernelTileFeatures);

}  // namespace pixelfly
