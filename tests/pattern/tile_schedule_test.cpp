// Tile schedules: every line and every nonzero block covered exactly once, with the index
// formulas the kernels rely on.
#include <gtest/gtest.h>

#include <random>

#include "pixelfly/pattern/flat_butterfly.h"
#include "pixelfly/pattern/random_layout.h"
#include "pixelfly/pattern/tile_schedule.h"

namespace pixelfly {
namespace {

void expect_valid(const BlockLayout& l, int64_t tile_features) {
  const TileSchedule s = make_tile_schedule(l, tile_features);
  const int64_t span = tile_features / l.block();
  // Row groups: consecutive, cover all rows, equal lists, CSR formula.
  int64_t next = 0;
  for (const LineGroup& g : s.row_groups) {
    EXPECT_EQ(g.first, next);
    EXPECT_GE(g.count, 1);
    EXPECT_LE(g.count, span);
    next += g.count;
    for (int64_t i = 0; i < g.count; ++i) {
      ASSERT_EQ(l.row_count(g.first + i), g.per_line);
      for (int64_t k = 0; k < g.per_line; ++k) {
        EXPECT_EQ(g.position + i * g.per_line + k, l.row_ptr()[g.first + i] + k);
        EXPECT_EQ(l.col_idx()[g.position + i * g.per_line + k], l.col_idx()[g.position + k]);
      }
    }
  }
  EXPECT_EQ(next, l.block_rows());
  // Column groups: the same through the transpose index.
  next = 0;
  for (const LineGroup& g : s.col_groups) {
    EXPECT_EQ(g.first, next);
    EXPECT_LE(g.count, span);
    next += g.count;
    for (int64_t i = 0; i < g.count; ++i) {
      for (int64_t k = 0; k < g.per_line; ++k) {
        const int64_t t = g.position + i * g.per_line + k;
        EXPECT_EQ(t, l.col_ptr()[g.first + i] + k);
        EXPECT_EQ(l.row_idx()[t], l.row_idx()[g.position + k]);
        EXPECT_EQ(l.col_idx()[l.transpose_block()[t]], g.first + i);
      }
    }
  }
  EXPECT_EQ(next, l.block_cols());
  // Gradient pieces: each nonzero block exactly once, at the block the formula names.
  std::vector<int> seen(l.nnz(), 0);
  for (const GradientPiece& p : s.gradient_pieces) {
    EXPECT_LE(p.rows, span);
    EXPECT_LE(p.cols, span);
    for (int64_t i = 0; i < p.rows; ++i) {
      for (int64_t j = 0; j < p.cols; ++j) {
        const int64_t block = p.base + i * p.row_stride + j;
        ASSERT_EQ(block, l.block_index(p.row_begin + i, p.col_begin + j));
        ++seen[block];
      }
    }
  }
  for (int c : seen) EXPECT_EQ(c, 1);
}

TEST(TileSchedule, CoversEveryLineAndBlockOnceWithTheKernelsFormulas) {
  expect_valid(flat_butterfly_layout({3072, 768, 16, 2, 32}), 128);
  expect_valid(flat_butterfly_layout({256, 96, 8, 2, 16}), 128);
  expect_valid(flat_butterfly_layout({4096, 1024, 16, 2, 128}), 128);
  expect_valid(BlockLayout::from_block_mask(40, 24, 8, {1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1}), 16);
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 30; ++trial) {
    const int64_t block = int64_t{16} << (rng() % 4);
    expect_valid(random_layout(1 + rng() % 700, 1 + rng() % 700, block, 0.1 + 0.8 * (rng() % 100) / 100.0, trial), 128);
  }
}

TEST(TileSchedule, RejectsATileThatIsNotWholeBlocks) {
  EXPECT_THROW(make_tile_schedule(random_layout(64, 64, 32, 0.5, 1), 48), std::invalid_argument);
}

}  // namespace
}  // namespace pixelfly
