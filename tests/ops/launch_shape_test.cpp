// The tensor-core kernels' grid shapes (kernels/cuda/launch_shape.h): weight-gradient token
// splits that fill the last wave, persistent block counts coprime to the groups, and the low-rank
// gradient products' feature splits.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <utility>

#include "kernels/cuda/launch_shape.h"

namespace pixelfly {
namespace {

using kernels::cuda::gradient_split_tokens;
using kernels::cuda::low_rank_grid;
using kernels::cuda::LowRankGrid;
using kernels::cuda::persistent_blocks;

constexpr int64_t kH200Slots = 2 * 132;  // two blocks on each of 132 multiprocessors

// Blocks launched for a token split of `per_split` and how full their last wave is.
double last_wave_filled(int64_t tokens, int64_t pieces, int64_t per_split, int64_t slots) {
  const int64_t blocks = pieces * ((tokens + per_split - 1) / per_split);
  const int64_t waves = (blocks + slots - 1) / slots;
  return static_cast<double>(blocks) / static_cast<double>(waves * slots);
}

TEST(LaunchShape, MixerWeightGradientFillsTwoWholeWaves) {
  // Mixer-B fc1: 48 pieces, 25 088 tokens. Six splits left 24 blocks in a second wave; eleven
  // fill two waves exactly.
  const int64_t per_split = gradient_split_tokens(25088, 48, 64, kH200Slots);
  EXPECT_EQ(per_split, 2304);
  EXPECT_DOUBLE_EQ(last_wave_filled(25088, 48, per_split, kH200Slots), 1.0);
}

TEST(LaunchShape, TokenSplitsAreWholeStepsCoverEveryTokenAndFillWaves) {
  for (int64_t tokens : {1, 63, 64, 300, 1001, 8192, 25088, 100000}) {
    for (int64_t pieces : {1, 6, 48, 100, 264, 1000}) {
      const int64_t per_split = gradient_split_tokens(tokens, pieces, 64, kH200Slots);
      const int64_t splits = (tokens + per_split - 1) / per_split;
      EXPECT_EQ(per_split % 64, 0) << tokens << " tokens, " << pieces << " pieces";
      EXPECT_GE(per_split * splits, tokens);
      EXPECT_TRUE(splits == 1 || per_split >= 256) << tokens << " tokens, " << pieces << " pieces";
      // At least as full as the one-split launch.
      EXPECT_GE(last_wave_filled(tokens, pieces, per_split, kH200Slots) + 1e-9,
                last_wave_filled(tokens, pieces, (tokens + 63) / 64 * 64, kH200Slots));
    }
  }
}

TEST(LaunchShape, PersistentBlocksAreCoprimeToTheGroups) {
  EXPECT_EQ(persistent_blocks(100, 6, kH200Slots), 100);  // every tile its own block
  EXPECT_EQ(persistent_blocks(1176, 6, kH200Slots), 263);  // 264 = 44 x 6 would pin each block to one group
  for (int64_t groups : {1, 2, 6, 24, 32, 132, 264, 1000}) {
    const int64_t blocks = persistent_blocks(100000, groups, kH200Slots);
    EXPECT_LE(blocks, kH200Slots);
    EXPECT_GE(blocks, 1);
    EXPECT_EQ(std::gcd(blocks, groups), 1) << groups << " groups";
  }
}

// Stages of the busiest block of a low-rank products grid over `token_tiles` tiles.
int64_t busiest_stages(const LowRankGrid& g, int64_t token_tiles) {
  return (token_tiles + g.groups - 1) / g.groups * g.chunks_per_split;
}

TEST(LaunchShape, LowRankGridsAtThePaperShapes) {
  // One block on each of 132 multiprocessors; rank 32 with the ones column fits 13 chunks of 64
  // features per split. Mixer-B fc2 (768 features: 12 chunks, 196 token tiles): one split left
  // 64 blocks with two tiles (24 stages); two splits of 66 groups, 18.
  struct Case {
    int64_t chunks, tiles, splits, chunks_per_split, groups;
  };
  for (const Case& c : {Case{12, 196, 2, 6, 66}, Case{48, 196, 4, 12, 33}, Case{64, 64, 8, 8, 16},
                        Case{16, 64, 2, 8, 64}}) {
    const LowRankGrid g = low_rank_grid(c.chunks, 13, c.tiles, 132);
    EXPECT_EQ(g.splits, c.splits) << c.chunks << " chunks, " << c.tiles << " tiles";
    EXPECT_EQ(g.chunks_per_split, c.chunks_per_split) << c.chunks << " chunks, " << c.tiles << " tiles";
    EXPECT_EQ(g.groups, c.groups) << c.chunks << " chunks, " << c.tiles << " tiles";
  }
}

TEST(LaunchShape, LowRankGridsCoverEveryChunkWithinTheSlots) {
  for (int64_t chunks : {1, 5, 12, 48, 64, 200}) {
    for (int64_t fit : {1, 3, 13}) {
      for (int64_t tiles : {1, 7, 64, 196, 1000}) {
        const LowRankGrid g = low_rank_grid(chunks, fit, tiles, 132);
        const std::string where =
            std::to_string(chunks) + " chunks, " + std::to_string(fit) + " fit, " + std::to_string(tiles) + " tiles";
        EXPECT_GE(g.splits * g.chunks_per_split, chunks) << where;
        EXPECT_LT((g.splits - 1) * g.chunks_per_split, chunks) << where;  // no split without a chunk
        EXPECT_LE(g.chunks_per_split, fit) << where;
        EXPECT_GE(g.groups, 1) << where;
        EXPECT_LE(g.groups, tiles) << where;
        EXPECT_TRUE(g.splits * g.groups <= 132 || g.groups == 1) << where;
        // No block has fewer than the mean number of stages' worth of work spread evenly.
        EXPECT_GE(busiest_stages(g, tiles) * g.splits * g.groups, tiles * chunks) << where;
      }
    }
  }
  // Nothing to split: one block's grid, not a division by zero.
  for (const auto& [chunks, tiles] : {std::pair<int64_t, int64_t>{0, 10}, std::pair<int64_t, int64_t>{4, 0}}) {
    const LowRankGrid g = low_rank_grid(chunks, 13, tiles, 132);
    EXPECT_EQ(g.splits, 1);
    EXPECT_EQ(g.groups, 1);
  }
}

}  // namespace
}  // namespace pixelfly
