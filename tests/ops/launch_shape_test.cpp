// The tensor-core kernels' grid shapes (kernels/cuda/launch_shape.h): weight-gradient token
// splits that weigh the last wave's fill against each block's fixed cost, the splits run as one
// cluster only where that costs no wave, persistent block counts coprime to the groups, the
// persistent kernels' balanced tile order, the low-rank gradient products' feature splits, and
// where the line kernels take the low-rank term beside their ring of K stages.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/launch_shape.h"
#include "pixelfly/pattern/flat_butterfly.h"
#include "pixelfly/pattern/tile_schedule.h"

namespace pixelfly {
namespace {

using kernels::cuda::balanced_tile_order;
using kernels::cuda::gradient_clusters_fit;
using kernels::cuda::gradient_split_tokens;
using kernels::cuda::low_rank_beside_pays;
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

TEST(LaunchShape, MixerWeightGradientTakesOneWaveOfLongerSplits) {
  constexpr int64_t kSlots = 132;  // one block per multiprocessor, as the weight-gradient kernel
  // Mixer-B fc1: 24 pieces, 25 088 tokens. Eleven splits would fill two waves exactly, but each
  // block's fixed cost makes five splits in one wave (120 of 132 slots) the faster grid.
  const int64_t per_split = gradient_split_tokens(25088, 24, 64, kSlots);
  EXPECT_EQ(per_split, 5056);
  EXPECT_EQ((25088 + per_split - 1) / per_split, 5);
  EXPECT_DOUBLE_EQ(last_wave_filled(25088, 24, per_split, kSlots), 120.0 / 132.0);
  // GPT-2-medium fc1 at 8192 tokens (32 pieces) keeps four splits in one wave.
  EXPECT_EQ(gradient_split_tokens(8192, 32, 64, kSlots), 2048);
  // Few pieces over many tokens still split widely enough to fill the device.
  const int64_t few = gradient_split_tokens(25088, 2, 64, kSlots);
  EXPECT_EQ(2 * ((25088 + few - 1) / few), kSlots);
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

TEST(LaunchShape, WeightGradientSplitsRunAsClustersWhereThatCostsNoWave) {
  constexpr int64_t kSlots = 132;  // one block per multiprocessor, as the weight-gradient kernel
  // GPT-2-medium fc1 at 8192 tokens: 32 pieces in four splits fill one wave as 32 clusters of 4.
  EXPECT_TRUE(gradient_clusters_fit(32, 4, 32, kSlots));
  // Where only 30 such clusters fit at once, two waves of clusters against one of blocks.
  EXPECT_FALSE(gradient_clusters_fit(32, 4, 30, kSlots));
  // One split: clusters of one block, the same waves.
  EXPECT_TRUE(gradient_clusters_fit(256, 1, kSlots, kSlots));
  // No clusters of that size on the device, or nothing to run.
  EXPECT_FALSE(gradient_clusters_fit(32, 4, 0, kSlots));
  EXPECT_FALSE(gradient_clusters_fit(0, 4, 32, kSlots));
  // Four waves of blocks (200 x 2 on 132) against four of clusters (200 on 66).
  EXPECT_TRUE(gradient_clusters_fit(200, 2, 66, kSlots));
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

// The busiest block's cost under a flattened tile order (offsets, then tiles), after checking
// that it deals every tile exactly once and each block's tiles in ascending order.
int64_t busiest_cost(const std::vector<int32_t>& order, const std::vector<int64_t>& group_cost,
                     int64_t token_tiles) {
  const int64_t groups = static_cast<int64_t>(group_cost.size()), tiles = groups * token_tiles;
  const int64_t blocks = static_cast<int64_t>(order.size()) - 1 - tiles;
  EXPECT_GE(blocks, 1);
  EXPECT_EQ(order[0], 0);
  EXPECT_EQ(order[blocks], tiles);
  std::vector<int> seen(static_cast<size_t>(tiles), 0);
  int64_t busiest = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    EXPECT_LE(order[b], order[b + 1]);
    int64_t cost = 0;
    for (int32_t j = order[b]; j < order[b + 1]; ++j) {
      const int32_t t = order[blocks + 1 + j];
      EXPECT_TRUE(t >= 0 && t < tiles) << t;
      if (t < 0 || t >= tiles) return -1;
      ++seen[t];
      cost += group_cost[t % groups];
      if (j > order[b]) {
        EXPECT_LT(order[blocks + j], t) << "block " << b << " is not in ascending order";
      }
    }
    busiest = std::max(busiest, cost);
  }
  EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; }));
  return busiest;
}

// The same cost under round-robin over persistent_blocks() blocks.
int64_t round_robin_busiest(const std::vector<int64_t>& group_cost, int64_t token_tiles, int64_t slots) {
  const int64_t groups = static_cast<int64_t>(group_cost.size()), tiles = groups * token_tiles;
  const int64_t blocks = persistent_blocks(tiles, groups, slots);
  int64_t busiest = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    int64_t cost = 0;
    for (int64_t t = b; t < tiles; t += blocks) cost += group_cost[t % groups];
    busiest = std::max(busiest, cost);
  }
  return busiest;
}

TEST(LaunchShape, TileOrderBalancesGroupsOfDifferentLengths) {
  // Mixer-B fc2's forward (and fc1's grad_input): six groups, two of them with twice the union
  // (24 + 1 and 12 + 1 K steps with the low-rank step, plus one for the epilogue), 98 token tiles
  // on 132 multiprocessors. Round-robin over 131 blocks puts two long tiles and three short ones
  // on some blocks; dealt largest first, every block is within a short tile of the mean.
  const std::vector<int64_t> cost = {14, 26, 14, 14, 26, 14};
  const int64_t total = 98 * (4 * 14 + 2 * 26);
  const int64_t busiest = busiest_cost(balanced_tile_order(cost, 98, 132), cost, 98);
  EXPECT_EQ(round_robin_busiest(cost, 98, 132), 94);
  EXPECT_LE(busiest, (total + 131) / 132 + 2);
  EXPECT_LT(busiest, 84);
}

TEST(LaunchShape, TileOrderDealsEveryTileOnceWithinTheSlots) {
  for (const std::vector<int64_t>& cost : {std::vector<int64_t>{5}, std::vector<int64_t>{3, 3, 3, 3},
                                           std::vector<int64_t>{9, 1, 4, 4, 17, 2, 2}}) {
    for (int64_t token_tiles : {1, 2, 7, 40, 197}) {
      for (int64_t slots : {1, 5, 132}) {
        const std::vector<int32_t> order = balanced_tile_order(cost, token_tiles, slots);
        const int64_t tiles = static_cast<int64_t>(cost.size()) * token_tiles;
        const int64_t blocks = static_cast<int64_t>(order.size()) - 1 - tiles;
        EXPECT_EQ(blocks, std::min(tiles, slots)) << tiles << " tiles, " << slots << " slots";
        const int64_t busiest = busiest_cost(order, cost, token_tiles);
        // Largest first: never worse than round-robin, and within one tile of the mean.
        const int64_t total = std::accumulate(cost.begin(), cost.end(), int64_t{0}) * token_tiles;
        EXPECT_LE(busiest, round_robin_busiest(cost, token_tiles, slots)) << tiles << " tiles, " << slots << " slots";
        EXPECT_LE(busiest, (total + blocks - 1) / blocks + *std::max_element(cost.begin(), cost.end()));
      }
    }
  }
  EXPECT_EQ(balanced_tile_order({}, 10, 132), std::vector<int32_t>{0});  // no tiles: no blocks
}

// Stages of the busiest block of a low-rank products grid over `token_tiles` tiles.
int64_t busiest_stages(const LowRankGrid& g, int64_t token_tiles) {
  return (token_tiles + g.groups - 1) / g.groups * g.chunks_per_split;
}

TEST(LaunchShape, LowRankGridsAtThePaperShapes) {
  // One block on each of 132 multiprocessors; rank 32 with the ones column (width 40) fits 9
  // chunks of 64 features per split. Mixer-B fc2 (768 features: 12 chunks, 196 token tiles): two
  // splits of 66 groups (three or four splits move 5-9 % more). GPT-2-M fc2 (1024: 16 chunks, 64
  // tiles): four splits of 33 groups (two splits of 64 move a fifth more).
  struct Case {
    int64_t chunks, tiles, splits, chunks_per_split, groups;
  };
  for (const Case& c : {Case{12, 196, 2, 6, 66}, Case{48, 196, 6, 8, 22}, Case{64, 64, 8, 8, 16},
                        Case{16, 64, 4, 4, 33}}) {
    const LowRankGrid g = low_rank_grid(c.chunks, 9, c.tiles, 132, 32, 40);
    EXPECT_EQ(g.splits, c.splits) << c.chunks << " chunks, " << c.tiles << " tiles";
    EXPECT_EQ(g.chunks_per_split, c.chunks_per_split) << c.chunks << " chunks, " << c.tiles << " tiles";
    EXPECT_EQ(g.groups, c.groups) << c.chunks << " chunks, " << c.tiles << " tiles";
  }
}

TEST(LaunchShape, LowRankGridsCoverEveryChunkWithinTheSlots) {
  for (int64_t chunks : {1, 5, 12, 48, 64, 200}) {
    for (int64_t fit : {1, 3, 13}) {
      for (int64_t tiles : {1, 7, 64, 196, 1000}) {
        const LowRankGrid g = low_rank_grid(chunks, fit, tiles, 132, 32, 40);
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
    const LowRankGrid g = low_rank_grid(chunks, 9, tiles, 132, 32, 40);
    EXPECT_EQ(g.splits, 1);
    EXPECT_EQ(g.groups, 1);
  }
}

// The rank chunk goes beside the ring where most unions have an even number of blocks of 32 (it
// would take a K step of its own there), only at block 32 and for ranks up to 32.
TEST(LaunchShape, LowRankTermGoesBesideTheRingWhereItWouldTakeAStepOfItsOwn) {
  EXPECT_TRUE(low_rank_beside_pays({6, 6, 6, 6}, 32, 32));
  EXPECT_TRUE(low_rank_beside_pays({6, 6, 5}, 32, 8));
  EXPECT_FALSE(low_rank_beside_pays({5, 5, 6}, 32, 32));  // odd unions leave it half a stage
  EXPECT_FALSE(low_rank_beside_pays({6, 5}, 32, 32));     // not more than half
  EXPECT_FALSE(low_rank_beside_pays({6, 6}, 64, 32));
  EXPECT_FALSE(low_rank_beside_pays({6, 6}, 32, 40));
  EXPECT_FALSE(low_rank_beside_pays({6, 6}, 32, 0));
  EXPECT_FALSE(low_rank_beside_pays({}, 32, 32));
  // The paper's layers at n16 k2 b32, rank 32, with the groupings the kernels run: GPT-2-medium's
  // fc1 forward and fc2 grad_input take it beside (the two whose rank chunk cost a stage),
  // Mixer-B's fc1 forward keeps it in the ring (its six-line unions of five blocks leave it room).
  auto beside = [](int64_t out, int64_t in, bool by_columns) {
    const TileSchedule s = make_tile_schedule(flat_butterfly_layout({out, in, 16, 2, 32}));
    std::vector<int64_t> lengths;
    for (const LineGroup& g : line_grouping(s, by_columns, 32).groups) lengths.push_back(g.length);
    return low_rank_beside_pays(lengths, 32, 32);
  };
  EXPECT_TRUE(beside(4096, 1024, false));
  EXPECT_TRUE(beside(1024, 4096, true));
  EXPECT_FALSE(beside(3072, 768, false));
}

}  // namespace
}  // namespace pixelfly
