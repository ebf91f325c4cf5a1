// BlockLayout: CSR construction, validation, transpose index and merged tiles.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <tuple>

#include "pixelfly/pattern/block_layout.h"
#include "pixelfly/pattern/random_layout.h"

namespace pixelfly {
namespace {

// Checks every invariant of a layout against its own block mask.
void expect_consistent(const BlockLayout& l) {
  const std::vector<uint8_t> mask = l.block_mask();
  int64_t count = 0;
  for (uint8_t m : mask) count += m;
  ASSERT_EQ(count, l.nnz());
  EXPECT_DOUBLE_EQ(l.density(), static_cast<double>(count) / (l.block_rows() * l.block_cols()));
  // CSR: ascending columns, block_index finds every block.
  for (int64_t r = 0; r < l.block_rows(); ++r) {
    for (int64_t i = l.row_ptr()[r]; i < l.row_ptr()[r + 1]; ++i) {
      if (i > l.row_ptr()[r]) {
        EXPECT_LT(l.col_idx()[i - 1], l.col_idx()[i]);
      }
      EXPECT_EQ(l.block_index(r, l.col_idx()[i]), i);
    }
  }
  // Transpose: every block exactly once, rows ascending within a column.
  std::vector<int> seen(l.nnz(), 0);
  for (int64_t c = 0; c < l.block_cols(); ++c) {
    for (int64_t t = l.col_ptr()[c]; t < l.col_ptr()[c + 1]; ++t) {
      const int64_t block = l.transpose_block()[t];
      ++seen[block];
      EXPECT_EQ(l.col_idx()[block], c);
      EXPECT_EQ(l.block_index(l.row_idx()[t], c), block);
      if (t > l.col_ptr()[c]) {
        EXPECT_LT(l.row_idx()[t - 1], l.row_idx()[t]);
      }
    }
  }
  for (int s : seen) EXPECT_EQ(s, 1);
  // Tiles: cover each nonzero block exactly once, are dense, and their offsets are right.
  std::vector<int> covered(l.nnz(), 0);
  int64_t packed = 0;
  for (const BlockTile& t : l.tiles()) {
    EXPECT_EQ(t.packed_offset, packed);
    packed += t.blocks() * l.block() * l.block();
    for (int64_t r = t.row_begin; r < t.row_end; ++r) {
      for (int64_t c = t.col_begin; c < t.col_end; ++c) {
        const int64_t block = l.block_index(r, c);
        ASSERT_GE(block, 0) << "tile covers a zero block (" << r << ", " << c << ")";
        EXPECT_EQ(block, l.row_ptr()[r] + t.offset_in_row + (c - t.col_begin));
        ++covered[block];
      }
    }
  }
  EXPECT_EQ(packed, l.stored_values());
  for (int c : covered) EXPECT_EQ(c, 1);
}

TEST(BlockLayout, FromMaskRoundTripsAndPadsShapes) {
  // 70 x 45 with block 16 -> 5 x 3 blocks (padded to 80 x 48).
  const std::vector<uint8_t> mask = {1, 0, 1,  0, 0, 0,  1, 1, 1,  0, 1, 0,  1, 1, 0};
  const BlockLayout l = BlockLayout::from_block_mask(70, 45, 16, mask);
  EXPECT_EQ(l.block_rows(), 5);
  EXPECT_EQ(l.block_cols(), 3);
  EXPECT_EQ(l.nnz(), 8);
  EXPECT_EQ(l.block_mask(), mask);
  EXPECT_EQ(l.row_count(1), 0);
  EXPECT_EQ(l.to_text(), "X.X\n...\nXXX\n.X.\nXX.\n");
  expect_consistent(l);
}

TEST(BlockLayout, MergesRowsWithIdenticalColumnListsIntoTiles) {
  // Rows 0-1 share {0,1,3}; row 2 is {2}; rows 3 and 4 share {0,1}.
  const std::vector<uint8_t> mask = {1, 1, 0, 1,  1, 1, 0, 1,  0, 0, 1, 0,  1, 1, 0, 0,  1, 1, 0, 0};
  const BlockLayout l = BlockLayout::from_block_mask(5, 4, 1, mask);
  ASSERT_EQ(l.tiles().size(), 4u);
  const BlockTile& t0 = l.tiles()[0];
  EXPECT_EQ(std::make_tuple(t0.row_begin, t0.row_end, t0.col_begin, t0.col_end, t0.offset_in_row),
            std::make_tuple(int64_t{0}, int64_t{2}, int64_t{0}, int64_t{2}, int64_t{0}));
  const BlockTile& t1 = l.tiles()[1];
  EXPECT_EQ(std::make_tuple(t1.row_begin, t1.row_end, t1.col_begin, t1.col_end, t1.offset_in_row),
            std::make_tuple(int64_t{0}, int64_t{2}, int64_t{3}, int64_t{4}, int64_t{2}));
  const BlockTile& t3 = l.tiles()[3];
  EXPECT_EQ(std::make_tuple(t3.row_begin, t3.row_end, t3.col_begin, t3.col_end),
            std::make_tuple(int64_t{3}, int64_t{5}, int64_t{0}, int64_t{2}));
  EXPECT_DOUBLE_EQ(l.mean_tile_elements(), 11.0 / 4.0);  // 11 blocks in 4 tiles
  expect_consistent(l);
}

TEST(BlockLayout, RejectsBadInputsNamingTheParameter) {
  auto message = [](auto&& make) {
    try {
      make();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([] { BlockLayout::from_block_mask(0, 4, 1, {}); }).find("out_features"), std::string::npos);
  EXPECT_NE(message([] { BlockLayout::from_block_mask(4, -1, 1, {}); }).find("in_features"), std::string::npos);
  EXPECT_NE(message([] { BlockLayout::from_block_mask(4, 4, 0, {}); }).find("block must be >= 1"), std::string::npos);
  EXPECT_NE(message([] { BlockLayout::from_block_mask(4, 4, 2, {1, 0, 1}); }).find("block_rows * block_cols"),
            std::string::npos);
  EXPECT_NE(message([] { BlockLayout::from_csr(4, 4, 2, {0, 1, 2}, {1, 2}); }).find("col_idx[1] = 2"),
            std::string::npos);
  EXPECT_NE(message([] { BlockLayout::from_csr(4, 4, 2, {0, 2, 2}, {1, 0}); }).find("ascending"),
            std::string::npos);
  EXPECT_NE(message([] { random_layout(8, 8, 2, 0.0, 1); }).find("density"), std::string::npos);
}

TEST(RandomLayout, HasExactCountIsDeterministicAndConsistent) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    const int64_t out = 1 + rng() % 300, in = 1 + rng() % 300, block = 1 + rng() % 40;
    const double density = 0.05 + 0.95 * (rng() % 1000) / 1000.0;
    const BlockLayout a = random_layout(out, in, block, density, trial);
    const BlockLayout b = random_layout(out, in, block, density, trial);
    EXPECT_TRUE(a == b);
    const int64_t total = a.block_rows() * a.block_cols();
    EXPECT_EQ(a.nnz(), std::clamp<int64_t>(std::llround(density * total), 1, total));
    expect_consistent(a);
  }
}

}  // namespace
}  // namespace pixelfly
