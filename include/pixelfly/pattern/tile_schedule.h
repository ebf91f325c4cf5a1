// Work lists for the tensor-core kernels, derived once from a BlockLayout. Each thread block
// computes a tile of up to kKernelTileFeatures or kKernelWideTileFeatures features (chosen per
// direction, kernel_line_tile_features below; weight-gradient pieces: kKernelTileFeatures x
// kGradientPieceFeatures) as a dense GEMM:
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

// The tile widths the CUDA tensor-core kernels compute per thread block: the forward and
// grad_input kernels' tiles are kKernelTileTokens tokens by one of the two widths, their K loops
// kKernelStepFeatures deep per stage.
constexpr int64_t kKernelTileFeatures = 128;
constexpr int64_t kKernelWideTileFeatures = 192;
constexpr int64_t kKernelTileTokens = 256;
constexpr int64_t kKernelStepFeatures = 64;
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
  int64_t row_tile_features = kKernelTileFeatures;  // features of a row group (forward tiles)
  int64_t col_tile_features = kKernelTileFeatures;  // features of a column group (grad_input tiles)
  std::vector<LineGroup> row_groups;  // covers every block row once, empty rows included
  std::vector<int64_t> row_index, row_blocks;
  std::vector<LineGroup> col_groups;  // covers every block column once, empty columns included
  std::vector<int64_t> col_index, col_blocks;
  std::vector<GradientPiece> gradient_pieces;  // covers every nonzero block once
  std::vector<int64_t> gradient_columns, gradient_blocks;
};

// Row groups hold at most row_tile_features / block rows, column groups col_tile_features /
// block columns, weight-gradient pieces kKernelTileFeatures / block rows by twice as many
// columns; each width must be a positive multiple of the block size, and so must
// kKernelTileFeatures (throws std::invalid_argument otherwise).
TileSchedule make_tile_schedule(const BlockLayout& layout, int64_t row_tile_features, int64_t col_tile_features);
// With each direction's width from kernel_line_tile_features.
TileSchedule make_tile_schedule(const BlockLayout& layout);

// The width of the line tiles for the forward (by_columns false: groups of block rows) or the
// grad_input kernel (true: block columns): kKernelWideTileFeatures where the block size divides
// it and the wide tiles' modelled time is under 0.97 of the narrow ones', else
// kKernelTileFeatures. The model: every tile's K stages plus two for its epilogue, times its
// width (a wide stage's products take 1.5x a narrow one's). Against the measured times
// (docs/perf.md, version 21) it is within 3-6 %, a little kind to the wide tiles where they
// lose. Wide tiles win where groups of four lines straddle two cells of the layout and groups
// of six do not: Mixer-B's and ViT-S's layouts, whose butterfly cells are 1.5 block-32 lines
// wide (the grad_input of fc1 and the forward of fc2: unions 1.6x the blocks in narrow tiles,
// 1.2x in wide ones).
int64_t kernel_line_tile_features(const BlockLayout& layout, bool by_columns);

}  // namespace pixelfly
