// Tile schedules: every line and every nonzero block covered exactly once, with the tables the
// kernels read.
#include <gtest/gtest.h>

#include <random>

#include "pixelfly/pattern/flat_butterfly.h"
#include "pixelfly/pattern/random_layout.h"
#include "pixelfly/pattern/tile_schedule.h"

namespace pixelfly {
namespace {

// Groups cover [0, lines) in order; each table entry is the block at (line, union index) and
// every nonzero block appears exactly once.
void expect_groups(const BlockLayout& l, const std::vector<LineGroup>& groups, const std::vector<int64_t>& index,
                   const std::vector<int64_t>& blocks, int64_t lines, int64_t span, bool rows) {
  std::vector<int> seen(l.nnz(), 0);
  int64_t next = 0;
  for (const LineGroup& g : groups) {
    EXPECT_EQ(g.first, next);
    EXPECT_GE(g.count, 1);
    EXPECT_LE(g.count, span);
    next += g.count;
    for (int64_t k = 0; k < g.length; ++k) {
      if (k > 0) {
        EXPECT_LT(index[g.index_offset + k - 1], index[g.index_offset + k]);
      }
      bool used = false;
      for (int64_t i = 0; i < g.count; ++i) {
        const int64_t r = rows ? g.first + i : index[g.index_offset + k];
        const int64_t c = rows ? index[g.index_offset + k] : g.first + i;
        const int64_t block = blocks[g.block_offset + i * g.length + k];
        EXPECT_EQ(block, l.block_index(r, c));
        if (block >= 0) {
          ++seen[block];
          used = true;
        }
      }
      EXPECT_TRUE(used) << "union position with no block";
    }
  }
  EXPECT_EQ(next, lines);
  for (int s : seen) EXPECT_EQ(s, 1);
}

void expect_valid(const BlockLayout& l, int64_t row_tile_features, int64_t col_tile_features) {
  const TileSchedule s = make_tile_schedule(l, row_tile_features, col_tile_features);
  EXPECT_EQ(s.row_tile_features, row_tile_features);
  EXPECT_EQ(s.col_tile_features, col_tile_features);
  expect_groups(l, s.row_groups, s.row_index, s.row_blocks, l.block_rows(), row_tile_features / l.block(), true);
  expect_groups(l, s.col_groups, s.col_index, s.col_blocks, l.block_cols(), col_tile_features / l.block(), false);
  const int64_t span = kKernelTileFeatures / l.block();
  std::vector<int> seen(l.nnz(), 0);
  for (const GradientPiece& p : s.gradient_pieces) {
    EXPECT_LE(p.rows, span);
    EXPECT_LE(p.cols, 2 * span);
    for (int64_t i = 0; i < p.rows; ++i) {
      for (int64_t j = 0; j < p.cols; ++j) {
        const int64_t block = s.gradient_blocks[p.block_offset + i * p.cols + j];
        EXPECT_EQ(block, l.block_index(p.row_first + i, s.gradient_columns[p.column_offset + j]));
        if (block >= 0) ++seen[block];
      }
    }
  }
  for (int c : seen) EXPECT_EQ(c, 1);
}

TEST(TileSchedule, CoversEveryLineAndBlockOnceWithTheKernelsTables) {
  expect_valid(flat_butterfly_layout({3072, 768, 16, 2, 32}), 128, 128);
  expect_valid(flat_butterfly_layout({3072, 768, 16, 2, 32}), 192, 192);
  expect_valid(flat_butterfly_layout({256, 96, 8, 2, 16}), 128, 192);
  expect_valid(flat_butterfly_layout({4096, 1024, 16, 2, 128}), 128, 128);
  expect_valid(BlockLayout::from_block_mask(40, 24, 8, {1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1}), 16, 24);
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 30; ++trial) {
    const int64_t block = int64_t{16} << (rng() % 4);
    const BlockLayout l = random_layout(1 + rng() % 700, 1 + rng() % 700, block, 0.1 + 0.8 * (rng() % 100) / 100.0, trial);
    expect_valid(l, 128, 128);
    if (block <= 64) expect_valid(l, 192, 192);
    const TileSchedule chosen = make_tile_schedule(l);
    expect_valid(l, chosen.row_tile_features, chosen.col_tile_features);
  }
}

TEST(TileSchedule, WideTilesWhereGroupsOfFourLinesStraddleTwoCells) {
  // Mixer-B's fc1 and ViT-S's layouts: butterfly cells of 1.5 block columns, so four block-32
  // columns straddle two cells where six share one cell's rows. grad_input: Mixer-B fc1's narrow
  // tiles take 4 x 12 + 2 x 24 stages per token tile, its wide ones 4 x 12.
  for (const BlockLayout& l : {flat_butterfly_layout({3072, 768, 16, 2, 32}), flat_butterfly_layout({2304, 768, 16, 2, 32})}) {
    EXPECT_EQ(kernel_line_tile_features(l, true), kKernelWideTileFeatures);
    const TileSchedule s = make_tile_schedule(l);
    EXPECT_EQ(s.col_tile_features, kKernelWideTileFeatures);
    EXPECT_EQ(s.col_groups.size(), 4u);
  }
  // Their forwards: Mixer-B fc1's row groups lose nothing to the straddle that six rows would
  // save (both model the same), ViT-S's a little (0.96).
  EXPECT_EQ(kernel_line_tile_features(flat_butterfly_layout({3072, 768, 16, 2, 32}), false), kKernelTileFeatures);
  EXPECT_EQ(kernel_line_tile_features(flat_butterfly_layout({2304, 768, 16, 2, 32}), false), kKernelWideTileFeatures);
  // Mixer-B fc2, the transpose of fc1: wide row groups.
  EXPECT_EQ(kernel_line_tile_features(flat_butterfly_layout({768, 3072, 16, 2, 32}), false), kKernelWideTileFeatures);
  // Aligned cells (GPT-2-medium; 4096 x 4096 up to density 0.5, where the wide tiles' 1.5x
  // products per stage cost more than their fewer tiles save); block 128 does not divide the
  // wide tile.
  for (const BlockLayout& l : {flat_butterfly_layout({4096, 1024, 16, 2, 32}), flat_butterfly_layout({4096, 4096, 4, 1, 32}),
                               flat_butterfly_layout({4096, 4096, 4, 1, 64}), flat_butterfly_layout({3072, 768, 16, 2, 128})}) {
    EXPECT_EQ(kernel_line_tile_features(l, false), kKernelTileFeatures);
    EXPECT_EQ(kernel_line_tile_features(l, true), kKernelTileFeatures);
  }
}

TEST(TileSchedule, AlignedButterflyGroupsHaveNoEmptyPositions) {
  // 4096 x 1024 at n=16, b=32: cells are 256 x 64, so each 4-row group shares one list.
  const BlockLayout l = flat_butterfly_layout({4096, 1024, 16, 2, 32});
  const TileSchedule s = make_tile_schedule(l);
  for (int64_t v : s.row_blocks) EXPECT_GE(v, 0);
  EXPECT_EQ(s.row_groups.size(), 32u);
}

TEST(TileSchedule, RejectsATileThatIsNotWholeBlocks) {
  EXPECT_THROW(make_tile_schedule(random_layout(64, 64, 32, 0.5, 1), 48, 128), std::invalid_argument);
  EXPECT_THROW(make_tile_schedule(random_layout(64, 64, 32, 0.5, 1), 128, 0), std::invalid_argument);
}

}  // namespace
}  // namespace pixelfly
