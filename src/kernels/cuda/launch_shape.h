// How the tensor-core kernels and the low-rank gradient products shape their grids and K loops,
// as plain functions of the problem and of `slots`, the number of thread blocks the device runs
// at once (blocks per multiprocessor x multiprocessors), so that the choices are tested on
// machines without a GPU.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <queue>
#include <utility>
#include <vector>

#include "pixelfly/pattern/tile_schedule.h"

namespace pixelfly::kernels::cuda {

// Whether the line kernels take a low-rank term of `rank` beside their ring of K stages
// (Epilogue::low_rank_beside) for tiles of groups of these union lengths: block 32, a rank of at
// most 32 (one 32-deep chunk), and more than half of the groups' tiles taking a K step of their
// own for that chunk in the ring (unions of an even number of blocks fill their stages), which
// costs about as much as a step of the union (GPT-2-medium's fc1 forward 34.1 -> 43.4 us with the
// rank-32 chunk in the ring, docs/perf.md version 31).
constexpr int64_t kLowRankBesideBlock = 32;
inline bool low_rank_beside_pays(const std::vector<int64_t>& group_lengths, int64_t block, int64_t rank) {
  if (block != kLowRankBesideBlock || rank <= 0 || rank > kLowRankBesideBlock) return false;
  size_t own_step = 0;
  for (const int64_t length : group_lengths) {
    own_step += line_tile_steps(length, block, rank) > line_tile_steps(length, block, 0) ? 1 : 0;
  }
  return 2 * own_step > group_lengths.size();
}

// Tokens per split of the weight gradient's token reduction over `pieces` tiles: of the split
// counts up to four waves' worth (each split at least 256 tokens), the one whose blocks do the
// most work per slot and unit of time, filled / waves x tokens per split / (tokens per split +
// kSplitOverheadTokens), a block's fixed cost (its ring's fill and drain, its float32 reductions
// or cluster exchange) counted as that many tokens of its stream; each split a whole number of
// `step`s long. Measured (docs/perf.md, version 29): Mixer-B fc1's 24 pieces at 25 088 tokens,
// in eleven splits (two full waves) 0.069 ms, in five (one wave, 120 of 132 slots) 0.062, which
// puts the fixed cost at about a thousand tokens.
constexpr int64_t kSplitOverheadTokens = 1024;
inline int64_t gradient_split_tokens(int64_t tokens, int64_t pieces, int64_t step, int64_t slots) {
  const int64_t max_splits = tokens / 256 > 1 ? tokens / 256 : 1;
  const int64_t wave_limit = 4 * slots / pieces > 1 ? 4 * slots / pieces : 1;
  int64_t best = 0;
  double best_score = -1.0;
  for (int64_t splits = 1; splits <= (max_splits < wave_limit ? max_splits : wave_limit); ++splits) {
    const int64_t per_split = ((tokens + splits - 1) / splits + step - 1) / step * step;
    const int64_t blocks = pieces * ((tokens + per_split - 1) / per_split), waves = (blocks + slots - 1) / slots;
    const double filled = static_cast<double>(blocks) / static_cast<double>(waves * slots);
    const double score =
        filled * static_cast<double>(per_split) / static_cast<double>(per_split + kSplitOverheadTokens);
    if (score > best_score + 1e-9) {
      best = per_split;
      best_score = score;
    }
  }
  return best;
}

// Whether the weight gradient runs each of `pieces` pieces' `splits` blocks as one thread-block
// cluster (their sums added in its shared memory and stored once, instead of reductions into a
// zeroed float32 buffer and a rounding pass): when the device runs such clusters at all
// (`clusters_at_once` of them at a time) and they take no more waves than the blocks alone on
// `slots`.
inline bool gradient_clusters_fit(int64_t pieces, int64_t splits, int64_t clusters_at_once, int64_t slots) {
  if (clusters_at_once < 1 || pieces < 1 || splits < 1) return false;
  return (pieces + clusters_at_once - 1) / clusters_at_once <= (pieces * splits + slots - 1) / slots;
}

// Blocks of the persistent forward / grad_input kernels over `tiles` tiles numbered group first:
// all the tiles if they fit in the slots, else at most `slots` blocks, a count coprime to the
// number of groups, so that block b's tiles b, b + blocks, ... pass through every group and
// groups of different lengths even out.
inline int64_t persistent_blocks(int64_t tiles, int64_t groups, int64_t slots) {
  if (tiles <= slots) return tiles;
  auto gcd = [](int64_t a, int64_t b) {
    while (b != 0) {
      const int64_t r = a % b;
      a = b;
      b = r;
    }
    return a;
  };
  int64_t blocks = slots;
  while (blocks > 1 && gcd(blocks, groups) != 1) --blocks;
  return blocks;
}

// The order in which the persistent forward / grad_input kernels' blocks take their tiles,
// `token_tiles` x groups tiles numbered group first (tile t: group t % groups), tile t costing
// group_cost[t % groups]: min(tiles, slots) blocks, the tiles dealt largest first, each to the
// block with the least cost so far (ties: the lower block), then each block's list in ascending
// order, so that the blocks running at once stay on neighbouring token tiles. Round-robin
// (persistent_blocks) leaves a block up to a whole long tile more than others where groups
// differ in cost (Mixer-B fc2 forward: two of six groups twice as long, the busiest block 1.18x
// the mean; dealt largest first, 1.02x). Returned flattened: offsets[blocks + 1] (block b's tiles
// are tiles[offsets[b] .. offsets[b + 1])), then the tiles.
inline std::vector<int32_t> balanced_tile_order(const std::vector<int64_t>& group_cost, int64_t token_tiles,
                                                int64_t slots) {
  const int64_t groups = static_cast<int64_t>(group_cost.size());
  const int64_t tiles = groups * token_tiles;
  const int64_t blocks = std::min(tiles, slots);
  if (blocks < 1) return {0};
  std::vector<int32_t> by_cost(static_cast<size_t>(tiles));
  for (int64_t t = 0; t < tiles; ++t) by_cost[t] = static_cast<int32_t>(t);
  std::stable_sort(by_cost.begin(), by_cost.end(),
                   [&](int32_t a, int32_t b) { return group_cost[a % groups] > group_cost[b % groups]; });
  using Load = std::pair<int64_t, int64_t>;  // (cost so far, block)
  std::priority_queue<Load, std::vector<Load>, std::greater<Load>> least;
  for (int64_t b = 0; b < blocks; ++b) least.push({0, b});
  std::vector<std::vector<int32_t>> lists(static_cast<size_t>(blocks));
  for (const int32_t t : by_cost) {
    const Load l = least.top();
    least.pop();
    lists[l.second].push_back(t);
    least.push({l.first + group_cost[t % groups], l.second});
  }
  std::vector<int32_t> order(static_cast<size_t>(blocks + 1));
  order.reserve(static_cast<size_t>(blocks + 1 + tiles));
  for (int64_t b = 0; b < blocks; ++b) {
    std::sort(lists[b].begin(), lists[b].end());
    order[b + 1] = order[b] + static_cast<int32_t>(lists[b].size());
    order.insert(order.end(), lists[b].begin(), lists[b].end());
  }
  return order;
}

// The low-rank gradient products' grid (low_rank_gradients.cu): `chunks` feature chunks cut into
// splits of at most `chunks_fit` (what a block's shared-memory slots hold), times groups of the
// `token_tiles` token tiles (a block owns one split and every groups-th tile), one block per slot.
struct LowRankGrid {
  int64_t splits = 1, chunks_per_split = 1, groups = 1;
};
constexpr int64_t kLowRankTileTokens = 128, kLowRankChunkFeatures = 64;  // a stage of dy

// Of the split counts from the fewest that fit to four times that, the one whose busiest block
// moves the fewest bytes, the fewest splits on a tie. A block moves its stages of dy (its token
// tiles x chunks per split, 128 x 64 elements each), its chunks' rows of u, and its float32
// sums: dy^T [x v | 1] once per chunk (64 x width) and dy u once per token tile (128 x rank),
// stored in the 16-bit type with one split and otherwise added into the other splits'; an addition
// reads and writes its bytes at L2, so it counts twice. With rank 32 and the ones column (nine
// chunks fit a block): at Mixer-B fc2 (12 chunks, 196 token tiles on 132 blocks) two splits of 66
// groups, three tiles of 6 chunks each, move the fewest; at GPT-2-M fc2 (16 chunks, 64 tiles) two
// splits of 64 groups give each block one tile and 8 chunks' sums of dy^T [x v | 1], four of 33
// two tiles of 4 chunks: half of those sums for twice the dy u sums, a fifth fewer bytes.
inline LowRankGrid low_rank_grid(int64_t chunks, int64_t chunks_fit, int64_t token_tiles, int64_t slots,
                                 int64_t rank, int64_t width) {
  if (chunks < 1 || chunks_fit < 1 || token_tiles < 1) return LowRankGrid{};  // nothing to split
  const int64_t fewest = (chunks + chunks_fit - 1) / chunks_fit;
  const int64_t most = 4 * fewest < chunks ? 4 * fewest : chunks;
  LowRankGrid best;
  int64_t best_bytes = -1;
  for (int64_t splits = fewest; splits <= most; ++splits) {
    const int64_t per_split = (chunks + splits - 1) / splits;
    const int64_t fit_groups = slots / splits > 1 ? slots / splits : 1;
    const int64_t groups = token_tiles < fit_groups ? token_tiles : fit_groups;
    const int64_t tiles = (token_tiles + groups - 1) / groups;
    const int64_t dy_u = tiles * kLowRankTileTokens * rank * (splits > 1 ? 2 * 4 : 2);
    const int64_t bytes = tiles * per_split * kLowRankTileTokens * kLowRankChunkFeatures * 2 +
                          per_split * kLowRankChunkFeatures * rank * 2 +
                          2 * per_split * kLowRankChunkFeatures * width * 4 + dy_u;
    if (best_bytes < 0 || bytes < best_bytes) {
      best_bytes = bytes;
      best = LowRankGrid{splits, per_split, groups};
    }
  }
  return best;
}

}  // namespace pixelfly::kernels::cuda
