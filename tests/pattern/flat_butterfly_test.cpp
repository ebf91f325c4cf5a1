// Flat block butterfly layouts: the examples of spec/pixelfly.md section 1 and properties over
// many random shapes, checked against an element-by-element construction.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "pixelfly/pattern/flat_butterfly.h"

namespace pixelfly {
namespace {

std::string drawing(int64_t n, int64_t k) {
  return flat_butterfly_layout({n, n, n, k, 1}).to_text();
}

TEST(FlatButterfly, MatchesTheSpecDrawingsForN8) {
  EXPECT_EQ(drawing(8, 1),
            "XX......\nXX......\n..XX....\n..XX....\n....XX..\n....XX..\n......XX\n......XX\n");
  EXPECT_EQ(drawing(8, 2),
            "XXX.....\nXX.X....\nX.XX....\n.XXX....\n....XXX.\n....XX.X\n....X.XX\n.....XXX\n");
  EXPECT_EQ(drawing(8, 3),
            "XXX.X...\nXX.X.X..\nX.XX..X.\n.XXX...X\nX...XXX.\n.X..XX.X\n..X.X.XX\n...X.XXX\n");
}

TEST(FlatButterfly, BaseMaskHasKPlusOneNonzerosPerRowAndColumn) {
  for (int64_t n = 2; n <= 64; n *= 2) {
    for (int64_t k = 1; (int64_t{1} << k) <= n; ++k) {
      const std::vector<uint8_t> m = butterfly_base_mask(n, k);
      for (int64_t i = 0; i < n; ++i) {
        int row = 0, col = 0;
        for (int64_t j = 0; j < n; ++j) {
          row += m[i * n + j];
          col += m[j * n + i];
          EXPECT_EQ(m[i * n + j], m[j * n + i]) << "symmetric";
        }
        EXPECT_EQ(row, k + 1);
        EXPECT_EQ(col, k + 1);
      }
    }
  }
}

TEST(FlatButterfly, RectangularExample256x128) {
  const BlockLayout l = flat_butterfly_layout({256, 128, 8, 2, 16});
  EXPECT_EQ(l.block_rows(), 16);
  EXPECT_EQ(l.block_cols(), 8);
  EXPECT_DOUBLE_EQ(l.density(), 0.375);
  // Each cell is 2 x 1 blocks: block row p uses cell row p / 2.
  const std::vector<uint8_t> base = butterfly_base_mask(8, 2);
  for (int64_t p = 0; p < 16; ++p) {
    for (int64_t q = 0; q < 8; ++q) EXPECT_EQ(l.contains(p, q), base[(p / 2) * 8 + q] != 0);
  }
}

TEST(FlatButterfly, NonDivisibleExample256x96BecomesTwoDiagonalBlocks) {
  const BlockLayout l = flat_butterfly_layout({256, 96, 8, 2, 16});
  EXPECT_EQ(l.block_rows(), 16);
  EXPECT_EQ(l.block_cols(), 6);
  EXPECT_DOUBLE_EQ(l.density(), 0.5);
  for (int64_t p = 0; p < 16; ++p) {
    for (int64_t q = 0; q < 6; ++q) EXPECT_EQ(l.contains(p, q), (p < 8) == (q < 3)) << p << "," << q;
  }
  // Two dense 8 x 3 super-blocks.
  ASSERT_EQ(l.tiles().size(), 2u);
  EXPECT_EQ(l.tiles()[0].blocks(), 24);
  EXPECT_EQ(l.tiles()[1].blocks(), 24);
}

TEST(FlatButterfly, ReleasedSettingDensities) {
  // n=16, k=2, b=32 (spec section 1).
  EXPECT_NEAR(flat_butterfly_layout({3072, 768, 16, 2, 32}).density(), 0.208, 5e-4);   // Mixer-B fc1
  EXPECT_NEAR(flat_butterfly_layout({768, 3072, 16, 2, 32}).density(), 0.208, 5e-4);   // Mixer-B fc2
  EXPECT_DOUBLE_EQ(flat_butterfly_layout({4096, 1024, 16, 2, 32}).density(), 0.1875);  // GPT-2-medium fc1
  EXPECT_NEAR(flat_butterfly_layout({768, 768, 16, 2, 32}).density(), 0.222, 5e-4);    // ViT q/k/v
}

TEST(FlatButterfly, RejectsBadParametersNamingTheRange) {
  auto message = [](FlatButterflyParams p) {
    try {
      flat_butterfly_layout(p);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message({64, 64, 12, 2, 4}), "butterfly_size must be a power of two >= 2, got 12");
  EXPECT_EQ(message({64, 64, 1, 1, 4}), "butterfly_size must be a power of two >= 2, got 1");
  EXPECT_EQ(message({64, 64, 8, 4, 4}), "factors must be in [1, log2(butterfly_size)] = [1, 3], got 4");
  EXPECT_EQ(message({64, 64, 8, 0, 4}), "factors must be in [1, log2(butterfly_size)] = [1, 3], got 0");
  EXPECT_EQ(message({64, 64, 8, 2, 0}), "block must be >= 1, got 0");
  EXPECT_EQ(message({0, 64, 8, 2, 4}), "out_features must be >= 1, got 0");
  EXPECT_EQ(message({64, -3, 8, 2, 4}), "in_features must be >= 1, got -3");
  EXPECT_EQ(message({16, 64, 32, 2, 4}), "butterfly_size must be <= min(padded out, padded in) = 16, got 32");
}

// Element-level construction straight from the definition, for comparison; also counts the
// nonzero elements of the stretched mask.
std::vector<uint8_t> reference_tiles(const FlatButterflyParams& p, int64_t* nonzero_elements) {
  const int64_t rows = (p.out_features + p.block - 1) / p.block, cols = (p.in_features + p.block - 1) / p.block;
  const int64_t po = rows * p.block, pi = cols * p.block, n = p.butterfly_size;
  const std::vector<uint8_t> base = butterfly_base_mask(n, p.factors);
  std::vector<uint8_t> tiles(rows * cols, 0);
  *nonzero_elements = 0;
  for (int64_t r = 0; r < po; ++r) {
    for (int64_t c = 0; c < pi; ++c) {
      if (base[(r * n / po) * n + (c * n / pi)]) {
        tiles[(r / p.block) * cols + (c / p.block)] = 1;
        ++*nonzero_elements;
      }
    }
  }
  return tiles;
}

TEST(FlatButterfly, AgreesWithElementLevelDefinitionOnRandomShapes) {
  std::mt19937_64 rng(2024);
  int checked = 0;
  while (checked < 300) {
    FlatButterflyParams p;
    p.out_features = 1 + rng() % 160;
    p.in_features = 1 + rng() % 160;
    p.block = 1 + rng() % 24;
    p.butterfly_size = int64_t{2} << (rng() % 6);
    const int64_t max_n = std::min((p.out_features + p.block - 1) / p.block * p.block,
                                   (p.in_features + p.block - 1) / p.block * p.block);
    if (p.butterfly_size > max_n) continue;
    p.factors = 1 + rng() % exact_log2(p.butterfly_size);
    const BlockLayout l = flat_butterfly_layout(p);
    int64_t nonzero_elements = 0;
    ASSERT_EQ(l.block_mask(), reference_tiles(p, &nonzero_elements))
        << p.out_features << "x" << p.in_features << " n=" << p.butterfly_size << " k=" << p.factors
        << " b=" << p.block;
    // Tiles cover the stretched mask, so never sparser than it; exactly (k+1)/n when cells are
    // whole tiles.
    const int64_t po = l.block_rows() * p.block, pi = l.block_cols() * p.block;
    EXPECT_GE(l.density(), static_cast<double>(nonzero_elements) / (po * pi) - 1e-12);
    const double exact = static_cast<double>(p.factors + 1) / p.butterfly_size;
    if (po % (p.butterfly_size * p.block) == 0 && pi % (p.butterfly_size * p.block) == 0) {
      EXPECT_DOUBLE_EQ(l.density(), exact);
    }
    ++checked;
  }
}

}  // namespace
}  // namespace pixelfly
