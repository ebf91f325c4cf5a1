// Work lists for the tensor-core kernels, derived once from a BlockLayout. Each thread block
// computes a tile of up to kKernelTileFeatures or kKernelWideTileFeatures features (chosen per
// direction and low-rank term, line_grouping below; weight-gradient pieces: kKernelTileFeatures x
// kGradientPieceFeatures or kNarrowGradientPieceFeatures, chosen per layout) as a dense GEMM:
//   forward     a group of consecutive block rows; K walks the union of their column lists,
//   grad_input  a group of consecutive block columns; K walks the union of their row lists,
//   grad_weight a row group and up to a piece's width of its union columns; K walks tokens.
// Where a line has no block at a position of the union, the kernel reads zeros (and writes
// nothing), so layouts whose cells do not align with tiles still fill whole tiles.
#pragma once

#include <cstdint>
#include <vector>

#include "pixelfly/pattern/block_layout.h"

// line_tile_steps below is also what the CUDA kernels count their K steps with.
#if defined(__CUDACC__)
#define PIXELFLY_HOST_DEVICE __host__ __device__
#else
#define PIXELFLY_HOST_DEVICE
#endif

namespace pixelfly {

// The tile widths the CUDA tensor-core kernels compute per thread block: the forward and
// grad_input kernels' tiles are kKernelTileTokens tokens by one of the two widths, their K loops
// kKernelStepFeatures deep per stage.
constexpr int64_t kKernelTileFeatures = 128;
constexpr int64_t kKernelWideTileFeatures = 192;
constexpr int64_t kKernelTileTokens = 256;
constexpr int64_t kKernelStepFeatures = 64;
// Columns of a weight-gradient piece: two tiles wide, so that a piece reads its rows of dY once
// for twice the columns of X; or, where the block divides it, 192 (one m64n192 product per
// warpgroup instead of two m64n128): a row group whose union is five or six blocks of 32 wide
// (Mixer-B fc1, ViT-S, GPT-2-medium fc1) then fills its piece instead of leaving a quarter or
// more of the products on columns it does not have.
constexpr int64_t kGradientPieceFeatures = 2 * kKernelTileFeatures;
constexpr int64_t kNarrowGradientPieceFeatures = 192;
// The width of the weight gradient's x boxes where a piece's columns run that wide
// (gradient_columns_in_runs_of_64 below): 128-byte rows of a 16-bit type, whole L2 lines.
constexpr int64_t kGradientXRunFeatures = 64;
// A product over every input feature that rides in the weight-gradient pass (PixelflyLinear's
// x^T (dy u), "v's fold"): each of a piece's kGradientFoldWarpgroups consumer warpgroups
// multiplies one or two sets of kGradientFoldSetFeatures of the piece's features by it.
constexpr int64_t kGradientFoldSetFeatures = 64;
constexpr int64_t kGradientFoldWarpgroups = 2;
constexpr int64_t kMaxGradientFoldProducts = 2;  // per warpgroup: every set of a 256-wide piece

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

// A direction's line groups at one tile width, with their tables: group g's union index list is
// index[g.index_offset ..], its lines' blocks blocks[g.block_offset ..] (LineGroup).
struct LineGrouping {
  int64_t tile_features = 0;  // 0: not built (the wide width where the block does not divide it)
  std::vector<LineGroup> groups;
  std::vector<int64_t> index, blocks;
};

struct TileSchedule {
  int64_t block = 0;
  // The forward's groups of block rows and grad_input's groups of block columns, each covering
  // every line once (empty lines included), at kKernelTileFeatures and, where the block divides
  // it, at kKernelWideTileFeatures; line_grouping picks the one a call runs.
  LineGrouping rows, cols, wide_rows, wide_cols;
  // The weight-gradient pieces' width (gradient_piece_features below) and the pieces, which cover
  // every nonzero block once.
  int64_t gradient_piece_features = kGradientPieceFeatures;
  std::vector<GradientPiece> gradient_pieces;
  std::vector<int64_t> gradient_columns, gradient_blocks;
  // v's fold (kGradientFoldSetFeatures above): the sets each warpgroup of a piece multiplies and
  // the block columns whose rows each piece adds. Set j of a piece is its features [64 j, 64 j +
  // 64). gradient_fold_sets[(kGradientFoldWarpgroups * piece + w) * kMaxGradientFoldProducts + j]
  // for j < gradient_fold_products is the j-th set warpgroup w multiplies and adds from, or -1
  // for a product that adds nothing (it multiplies set 0: every warpgroup of every piece does
  // the same work, so that pieces that read the same columns of x run at one speed).
  // gradient_column_owner, beside gradient_columns, is 1 where the piece adds that block
  // column's rows (all of the column's sets are among its warpgroups'), else 0: each block column
  // with blocks has one owner. One product per warpgroup where the greedy assignment of
  // assign_one_fold_set_per_warpgroup (tile_schedule.cpp) owns every column with two sets per
  // piece (the paper's fc2 layouts: every set of x lies in two pieces), else two: warpgroup w
  // multiplies sets w and w + 2, each column owned by the first piece that holds it.
  // gradient_columns_cover_inputs: whether every block column has an owner (no column without
  // blocks), which the fold needs.
  int64_t gradient_fold_products = kMaxGradientFoldProducts;
  std::vector<int64_t> gradient_fold_sets;
  std::vector<int64_t> gradient_column_owner;
  bool gradient_columns_cover_inputs = false;
  // Whether every row group is exactly one piece (a union of at least one and at most
  // gradient_piece_features / block columns), so that the pieces read each output row once: a
  // product over every output feature, such as PixelflyLinear's dy u, can then ride along too.
  bool gradient_pieces_cover_rows_once = false;
  // Whether every piece's block columns come in runs of neighbours 64 features wide (64 / block of
  // them from the piece's first on, a count they divide; at blocks 64 and 128 always): at block
  // 32 flat butterflies whose cells are an even number of blocks wide on the input side (the
  // paper's fc2 layouts, GPT-2-medium's fc1, 4096 x 4096 at n = 4-16), at block 16 a multiple of
  // four. The weight-gradient kernel then copies x in 64-column boxes, whose 128-byte rows take
  // half (block 32) or a quarter (block 16) of the requests to L2 of 32- or 16-column ones.
  bool gradient_columns_in_runs_of_64 = false;
};

// Row groups of kKernelTileFeatures / block rows (and kKernelWideTileFeatures / block), column
// groups alike, weight-gradient pieces of kKernelTileFeatures / block rows by
// gradient_piece_features(rows) / block columns. Throws std::invalid_argument where the block does
// not divide kKernelTileFeatures.
TileSchedule make_tile_schedule(const BlockLayout& layout);

// The weight-gradient pieces' width for the narrow row groups `rows`: kNarrowGradientPieceFeatures
// where the block divides it and the pieces then multiply fewer columns in all (the sum over the
// groups of their pieces' widths), else kGradientPieceFeatures. Measured (docs/perf.md, version
// 23), 25 % fewer columns took the pass 2-4 % faster: its products are not what bounds it.
int64_t gradient_piece_features(const LineGrouping& rows, int64_t block);

// K steps (kKernelStepFeatures deep) of a line tile whose union has `length` blocks of `block`
// features, with a low-rank term of `rank` as extra K chunks right after the union's (chunks of
// min(block, kKernelStepFeatures) features: at blocks under 64 a rank-32 term fills a half-empty
// last stage). A tile of empty lines without a low-rank term still takes one step.
PIXELFLY_HOST_DEVICE constexpr int64_t line_tile_steps(int64_t length, int64_t block, int64_t rank) {
  const int64_t chunk = block < kKernelStepFeatures ? block : kKernelStepFeatures;
  const int64_t chunks = length * block / chunk + (rank + chunk - 1) / chunk;
  const int64_t steps = (chunks * chunk + kKernelStepFeatures - 1) / kKernelStepFeatures;
  return steps > 0 ? steps : 1;
}

// The grouping the forward (by_columns false: block rows) or grad_input (true: block columns)
// kernel runs with a low-rank term of `rank` (0 for the plain operators): the wide one where it
// was built and its modelled time is at most the narrow one's, else the narrow one. The model:
// every tile's K steps (line_tile_steps) plus two for its epilogue, times its width (a wide
// stage's products take 1.5x a narrow one's). Measured (docs/perf.md, versions 21 and 22), the
// wide tiles took 0.96-0.99 of the narrow ones' time in each of the five cases the model puts
// level, 0.85-0.94 where it gives 0.94-0.96, 0.69-0.76 at 0.78-0.79, and 1.10-1.39 where it gives
// 1.07-1.33 (aligned layouts: GPT-2-medium, 4096 x 4096, random). Wide tiles win where groups of
// four lines straddle two cells of the layout and groups of six do not: Mixer-B's and ViT-S's
// layouts, whose butterfly cells are 1.5 block-32 lines wide (the grad_input of fc1 and the
// forward of fc2: unions 1.6x the blocks in narrow tiles, 1.2x in wide ones); with a rank-32
// term also Mixer-B fc1's forward, whose six-line unions of five blocks leave the rank chunk room
// in their third stage where four-line unions of five take a fourth (0.94).
const LineGrouping& line_grouping(const TileSchedule& schedule, bool by_columns, int64_t rank);

// line_grouping's width for a layout (builds its schedule).
int64_t kernel_line_tile_features(const BlockLayout& layout, bool by_columns, int64_t rank = 0);

}  // namespace pixelfly

#undef PIXELFLY_HOST_DEVICE
