// Tile schedules: every line and every nonzero block covered exactly once, with the tables the
// kernels read.
#include <gtest/gtest.h>

#include <algorithm>
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

// Both widths' groupings where the block divides them, and the weight-gradient pieces.
void expect_valid(const BlockLayout& l) {
  const TileSchedule s = make_tile_schedule(l);
  EXPECT_EQ(s.block, l.block());
  EXPECT_EQ(s.rows.tile_features, kKernelTileFeatures);
  EXPECT_EQ(s.cols.tile_features, kKernelTileFeatures);
  const int64_t span = kKernelTileFeatures / l.block();
  expect_groups(l, s.rows.groups, s.rows.index, s.rows.blocks, l.block_rows(), span, true);
  expect_groups(l, s.cols.groups, s.cols.index, s.cols.blocks, l.block_cols(), span, false);
  const bool wide = kKernelWideTileFeatures % l.block() == 0;
  EXPECT_EQ(s.wide_rows.tile_features, wide ? kKernelWideTileFeatures : 0);
  EXPECT_EQ(s.wide_cols.tile_features, wide ? kKernelWideTileFeatures : 0);
  if (wide) {
    const int64_t wide_span = kKernelWideTileFeatures / l.block();
    expect_groups(l, s.wide_rows.groups, s.wide_rows.index, s.wide_rows.blocks, l.block_rows(), wide_span, true);
    expect_groups(l, s.wide_cols.groups, s.wide_cols.index, s.wide_cols.blocks, l.block_cols(), wide_span, false);
  } else {
    EXPECT_TRUE(s.wide_rows.groups.empty() && s.wide_cols.groups.empty());
  }
  // Without wide groupings the choice is the narrow one.
  if (!wide) {
    for (const bool by_columns : {false, true}) EXPECT_EQ(&line_grouping(s, by_columns, 32), by_columns ? &s.cols : &s.rows);
  }
  EXPECT_EQ(s.gradient_piece_features, gradient_piece_features(s.rows, l.block()));
  EXPECT_EQ(s.gradient_piece_features % l.block(), 0);
  std::vector<int> seen(l.nnz(), 0);
  for (const GradientPiece& p : s.gradient_pieces) {
    EXPECT_LE(p.rows, span);
    EXPECT_LE(p.cols, s.gradient_piece_features / l.block());
    for (int64_t i = 0; i < p.rows; ++i) {
      for (int64_t j = 0; j < p.cols; ++j) {
        const int64_t block = s.gradient_blocks[p.block_offset + i * p.cols + j];
        EXPECT_EQ(block, l.block_index(p.row_first + i, s.gradient_columns[p.column_offset + j]));
        if (block >= 0) ++seen[block];
      }
    }
  }
  for (int c : seen) EXPECT_EQ(c, 1);
  // v's fold: each warpgroup's sets lie in its piece, no set twice in a piece; each block column
  // that holds a block has exactly one owner piece, whose sets span it (with two products per
  // warpgroup, the first piece that holds it).
  ASSERT_TRUE(s.gradient_fold_products == 1 || s.gradient_fold_products == kMaxGradientFoldProducts);
  ASSERT_EQ(s.gradient_fold_sets.size(),
            s.gradient_pieces.size() * kGradientFoldWarpgroups * kMaxGradientFoldProducts);
  ASSERT_EQ(s.gradient_column_owner.size(), s.gradient_columns.size());
  std::vector<int> owners(l.block_cols(), 0), holders(l.block_cols(), 0);
  for (size_t p = 0; p < s.gradient_pieces.size(); ++p) {
    const GradientPiece& piece = s.gradient_pieces[p];
    std::vector<int64_t> sets;
    for (int64_t w = 0; w < kGradientFoldWarpgroups; ++w) {
      for (int64_t j = 0; j < kMaxGradientFoldProducts; ++j) {
        const int64_t set = s.gradient_fold_sets[(kGradientFoldWarpgroups * p + w) * kMaxGradientFoldProducts + j];
        if (j >= s.gradient_fold_products) EXPECT_EQ(set, -1);
        if (set < 0) continue;
        EXPECT_LT(set, s.gradient_piece_features / kGradientFoldSetFeatures);
        EXPECT_EQ(std::count(sets.begin(), sets.end(), set), 0) << "piece " << p << " set " << set;
        sets.push_back(set);
      }
    }
    for (int64_t i = 0; i < piece.cols; ++i) {
      const int64_t at = piece.column_offset + i, column = s.gradient_columns[at];
      if (s.gradient_fold_products == kMaxGradientFoldProducts) {
        EXPECT_EQ(s.gradient_column_owner[at], holders[column] == 0 ? 1 : 0) << "column " << column;
      }
      if (s.gradient_column_owner[at] == 1) {
        for (int64_t f = i * l.block(); f < (i + 1) * l.block(); f += kGradientFoldSetFeatures) {
          EXPECT_EQ(std::count(sets.begin(), sets.end(), f / kGradientFoldSetFeatures), 1) << "column " << column;
        }
      }
      owners[column] += static_cast<int>(s.gradient_column_owner[at]);
      ++holders[column];
    }
  }
  bool covered = true;
  for (int64_t c = 0; c < l.block_cols(); ++c) {
    const bool has_blocks = l.col_ptr()[c + 1] > l.col_ptr()[c];
    EXPECT_EQ(owners[c], has_blocks ? 1 : 0) << "column " << c;
    covered = covered && has_blocks;
  }
  EXPECT_EQ(s.gradient_columns_cover_inputs, covered);
  // Whether the pieces hold every block row exactly once.
  std::vector<int> pieces_of_row(l.block_rows(), 0);
  for (const GradientPiece& p : s.gradient_pieces) {
    for (int64_t i = 0; i < p.rows; ++i) ++pieces_of_row[p.row_first + i];
  }
  EXPECT_EQ(s.gradient_pieces_cover_rows_once,
            std::all_of(pieces_of_row.begin(), pieces_of_row.end(), [](int n) { return n == 1; }));
}

TEST(TileSchedule, CoversEveryLineAndBlockOnceWithTheKernelsTables) {
  expect_valid(flat_butterfly_layout({3072, 768, 16, 2, 32}));
  expect_valid(flat_butterfly_layout({256, 96, 8, 2, 16}));
  expect_valid(flat_butterfly_layout({4096, 1024, 16, 2, 128}));
  expect_valid(BlockLayout::from_block_mask(40, 24, 8, {1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1}));
  // A block column without blocks has no owner piece: the pieces do not cover every input.
  const BlockLayout gap = BlockLayout::from_block_mask(32, 32, 16, {1, 0, 1, 0});
  expect_valid(gap);
  EXPECT_FALSE(make_tile_schedule(gap).gradient_columns_cover_inputs);
  EXPECT_TRUE(make_tile_schedule(flat_butterfly_layout({3072, 768, 16, 2, 32})).gradient_columns_cover_inputs);
  // At the paper's fc2 layouts every set of x's features lies in two pieces: one set per warpgroup.
  for (const FlatButterflyParams& fc2 : {FlatButterflyParams{768, 3072, 16, 2, 32},
                                         FlatButterflyParams{1024, 4096, 16, 2, 32},
                                         FlatButterflyParams{768, 2304, 16, 2, 32}}) {
    const BlockLayout l = flat_butterfly_layout(fc2);
    expect_valid(l);
    EXPECT_EQ(make_tile_schedule(l).gradient_fold_products, 1) << fc2.out_features << " x " << fc2.in_features;
  }
  // Eighteen pieces have 36 warpgroups for x's 48 sets: two per warpgroup.
  const BlockLayout sparse_fc2 = flat_butterfly_layout({768, 3072, 16, 1, 32});
  expect_valid(sparse_fc2);
  EXPECT_EQ(make_tile_schedule(sparse_fc2).gradient_fold_products, 2);
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 30; ++trial) {
    const int64_t block = int64_t{16} << (rng() % 4);
    expect_valid(random_layout(1 + rng() % 700, 1 + rng() % 700, block, 0.1 + 0.8 * (rng() % 100) / 100.0, trial));
  }
}

// The weight-gradient pieces are 192 features wide where that multiplies fewer columns in all:
// row groups whose unions are five or six blocks of 32 (Mixer-B fc1, ViT-S, GPT-2-medium fc1)
// fill one 192-wide piece and leave a 256-wide one a quarter or more empty; unions of eight or
// sixteen (Mixer-B and GPT-2-medium fc2, 4096 x 4096 at n = 16) fill 256-wide pieces, which
// 192-wide ones would cut into more pieces and columns; block 128 does not divide 192.
TEST(TileSchedule, GradientPiecesOfTheWidthThatMultipliesFewerColumns) {
  for (const BlockLayout& l : {flat_butterfly_layout({3072, 768, 16, 2, 32}), flat_butterfly_layout({2304, 768, 16, 2, 32}),
                               flat_butterfly_layout({4096, 1024, 16, 2, 32})}) {
    EXPECT_EQ(make_tile_schedule(l).gradient_piece_features, kNarrowGradientPieceFeatures);
  }
  for (const BlockLayout& l : {flat_butterfly_layout({768, 3072, 16, 2, 32}), flat_butterfly_layout({1024, 4096, 16, 2, 32}),
                               flat_butterfly_layout({4096, 4096, 16, 1, 32}), flat_butterfly_layout({3072, 768, 16, 2, 128})}) {
    EXPECT_EQ(make_tile_schedule(l).gradient_piece_features, kGradientPieceFeatures);
  }
  // Mixer-B fc1: 24 row groups, each one 192-wide piece (unions of five or six blocks) instead of
  // one 256-wide piece.
  const TileSchedule mixer = make_tile_schedule(flat_butterfly_layout({3072, 768, 16, 2, 32}));
  EXPECT_EQ(mixer.gradient_pieces.size(), 24u);
}

// At the fc1 shapes of Mixer-B and GPT-2-medium every row group is one piece, so the pieces read
// each row of dy once; at the fc2 shapes a row group is several pieces, at ViT-S's some row groups
// (unions of ten blocks) two, and a row group without blocks is none.
TEST(TileSchedule, PiecesCoverEachRowOnceAtTheFc1Shapes) {
  for (const BlockLayout& l : {flat_butterfly_layout({3072, 768, 16, 2, 32}), flat_butterfly_layout({4096, 1024, 16, 2, 32})}) {
    EXPECT_TRUE(make_tile_schedule(l).gradient_pieces_cover_rows_once);
  }
  for (const BlockLayout& l : {flat_butterfly_layout({768, 3072, 16, 2, 32}), flat_butterfly_layout({1024, 4096, 16, 2, 32}),
                               flat_butterfly_layout({2304, 768, 16, 2, 32}),
                               BlockLayout::from_block_mask(256, 32, 32, {1, 1, 1, 1, 0, 0, 0, 0})}) {
    EXPECT_FALSE(make_tile_schedule(l).gradient_pieces_cover_rows_once);
  }
}

// Butterfly cells 64 features wide or a multiple on the input side (at block 32 the paper's fc2
// layouts, GPT-2-medium's fc1 and 4096 x 4096 at n = 16; at block 16 Mixer-B's fc2, cells of 192)
// give every weight-gradient piece its columns in runs of neighbours 64 features wide, as does any
// piece of such runs; cells of 48 features (Mixer-B's and ViT-S's fc1, at blocks 32 and 16), a
// run broken by a gap and a count the run does not divide do not. At blocks 64 and 128 every
// layout's do.
TEST(TileSchedule, GradientColumnsInRunsOf64FeaturesWhereEveryPieceHoldsSuchRuns) {
  for (const BlockLayout& l :
       {flat_butterfly_layout({768, 3072, 16, 2, 32}), flat_butterfly_layout({1024, 4096, 16, 2, 32}),
        flat_butterfly_layout({4096, 1024, 16, 2, 32}), flat_butterfly_layout({4096, 4096, 16, 1, 32}),
        flat_butterfly_layout({768, 3072, 16, 2, 16}), BlockLayout::from_block_mask(32, 128, 32, {0, 1, 1, 0}),
        BlockLayout::from_block_mask(32, 128, 32, {1, 1, 1, 1}),
        BlockLayout::from_block_mask(16, 128, 16, {0, 1, 1, 1, 1, 0, 0, 0}),
        BlockLayout::from_block_mask(64, 256, 64, {1, 0, 1, 0}), random_layout(512, 1024, 128, 0.3, 5)}) {
    EXPECT_TRUE(make_tile_schedule(l).gradient_columns_in_runs_of_64)
        << l.out_features() << "x" << l.in_features() << " b" << l.block();
  }
  for (const BlockLayout& l :
       {flat_butterfly_layout({3072, 768, 16, 2, 32}), flat_butterfly_layout({2304, 768, 16, 2, 32}),
        flat_butterfly_layout({3072, 768, 16, 2, 16}), BlockLayout::from_block_mask(32, 128, 32, {1, 0, 1, 0}),
        BlockLayout::from_block_mask(32, 128, 32, {1, 1, 1, 0}),
        BlockLayout::from_block_mask(16, 128, 16, {1, 1, 0, 1, 1, 1, 0, 0})}) {
    EXPECT_FALSE(make_tile_schedule(l).gradient_columns_in_runs_of_64)
        << l.out_features() << "x" << l.in_features() << " b" << l.block();
  }
}

TEST(TileSchedule, LineTileStepsCountTheUnionThenTheLowRankChunks) {
  EXPECT_EQ(line_tile_steps(5, 32, 0), 3);    // 160 features: three 64-deep steps, the last half full
  EXPECT_EQ(line_tile_steps(5, 32, 32), 3);   // the rank-32 chunk fills it
  EXPECT_EQ(line_tile_steps(6, 32, 32), 4);   // 192 + 32
  EXPECT_EQ(line_tile_steps(2, 128, 32), 5);  // four 64-wide chunks of blocks, one of the rank
  EXPECT_EQ(line_tile_steps(3, 16, 32), 2);   // 48 + 32
  EXPECT_EQ(line_tile_steps(0, 32, 0), 1);    // empty lines still take one step
  EXPECT_EQ(line_tile_steps(0, 32, 72), 2);
}

TEST(TileSchedule, WideTilesWhereGroupsOfFourLinesStraddleTwoCells) {
  // Mixer-B's fc1 and ViT-S's layouts: butterfly cells of 1.5 block columns, so four block-32
  // columns straddle two cells where six share one cell's rows. grad_input: Mixer-B fc1's narrow
  // tiles take 4 x 12 + 2 x 24 stages per token tile, its wide ones 4 x 12.
  for (const BlockLayout& l : {flat_butterfly_layout({3072, 768, 16, 2, 32}), flat_butterfly_layout({2304, 768, 16, 2, 32})}) {
    for (const int64_t rank : {0, 32}) EXPECT_EQ(kernel_line_tile_features(l, true, rank), kKernelWideTileFeatures);
    EXPECT_EQ(line_grouping(make_tile_schedule(l), true, 0).groups.size(), 4u);
  }
  // Their forwards: Mixer-B fc1's row groups model level (wide, measured 0.97-0.99), and with a
  // rank-32 chunk in the K loop 0.94 (six-row unions of five blocks keep it in their third stage,
  // four-row ones take a fourth); ViT-S's 0.96 without the low-rank term, level with it.
  for (const BlockLayout& l : {flat_butterfly_layout({3072, 768, 16, 2, 32}), flat_butterfly_layout({2304, 768, 16, 2, 32})}) {
    for (const int64_t rank : {0, 32}) EXPECT_EQ(kernel_line_tile_features(l, false, rank), kKernelWideTileFeatures);
  }
  // Mixer-B fc2, the transpose of fc1: wide both ways.
  for (const bool by_columns : {false, true}) {
    EXPECT_EQ(kernel_line_tile_features(flat_butterfly_layout({768, 3072, 16, 2, 32}), by_columns), kKernelWideTileFeatures);
  }
  // The rank decides: at 384 x 384, n=16, b=16 the groups model level without a low-rank term,
  // and a rank-32 term (two 16-wide chunks) takes a stage more in every wide tile, 1.125.
  for (const bool by_columns : {false, true}) {
    const BlockLayout l = flat_butterfly_layout({384, 384, 16, 1, 16});
    EXPECT_EQ(kernel_line_tile_features(l, by_columns, 0), kKernelWideTileFeatures);
    EXPECT_EQ(kernel_line_tile_features(l, by_columns, 32), kKernelTileFeatures);
  }
  // Aligned cells (GPT-2-medium; 4096 x 4096 up to density 0.5, where the wide tiles' 1.5x
  // products per stage cost more than their fewer tiles save); block 128 does not divide the
  // wide tile.
  for (const BlockLayout& l : {flat_butterfly_layout({4096, 1024, 16, 2, 32}), flat_butterfly_layout({4096, 4096, 4, 1, 32}),
                               flat_butterfly_layout({4096, 4096, 4, 1, 64}), flat_butterfly_layout({3072, 768, 16, 2, 128})}) {
    for (const int64_t rank : {0, 32}) {
      EXPECT_EQ(kernel_line_tile_features(l, false, rank), kKernelTileFeatures);
      EXPECT_EQ(kernel_line_tile_features(l, true, rank), kKernelTileFeatures);
    }
  }
}

TEST(TileSchedule, AlignedButterflyGroupsHaveNoEmptyPositions) {
  // 4096 x 1024 at n=16, b=32: cells are 256 x 64, so each 4-row group shares one list.
  const BlockLayout l = flat_butterfly_layout({4096, 1024, 16, 2, 32});
  const TileSchedule s = make_tile_schedule(l);
  for (int64_t v : s.rows.blocks) EXPECT_GE(v, 0);
  EXPECT_EQ(s.rows.groups.size(), 32u);
}

TEST(TileSchedule, RejectsABlockThatDoesNotDivideTheKernelsTile) {
  EXPECT_THROW(make_tile_schedule(random_layout(96, 96, 48, 0.5, 1)), std::invalid_argument);
  EXPECT_THROW(make_tile_schedule(random_layout(72, 72, 24, 0.5, 1)), std::invalid_argument);
}

}  // namespace
}  // namespace pixelfly
