// How the tensor-core kernels and the low-rank gradient products shape their grids, as plain
// functions of the problem and of `slots`, the number of thread blocks the device runs at once
// (blocks per multiprocessor x multiprocessors), so that the choices are tested on machines
// without a GPU.
#pragma once

#include <cstdint>

namespace pixelfly::kernels::cuda {

// Tokens per split of the weight gradient's token reduction over `pieces` tiles: the number of
// splits (at most four waves' worth, each split at least 256 tokens) that leaves the fewest
// idle slots in the last wave, the fewest splits among equals; each split a whole number of
// `step`s long.
inline int64_t gradient_split_tokens(int64_t tokens, int64_t pieces, int64_t step, int64_t slots) {
  const int64_t max_splits = tokens / 256 > 1 ? tokens / 256 : 1;
  const int64_t wave_limit = 4 * slots / pieces > 1 ? 4 * slots / pieces : 1;
  int64_t best = 1;
  double best_filled = 0.0;
  for (int64_t splits = 1; splits <= (max_splits < wave_limit ? max_splits : wave_limit); ++splits) {
    const int64_t blocks = pieces * splits, waves = (blocks + slots - 1) / slots;
    const double filled = static_cast<double>(blocks) / static_cast<double>(waves * slots);
    if (filled > best_filled + 1e-9) {
      best = splits;
      best_filled = filled;
    }
  }
  return ((tokens + best - 1) / best + step - 1) / step * step;
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

// The low-rank gradient products' grid (low_rank_gradients.cu): `chunks` feature chunks cut into
// splits of at most `chunks_fit` (what a block's shared-memory slots hold), times groups of the
// `token_tiles` token tiles (a block owns one split and every groups-th tile), one block per slot.
struct LowRankGrid {
  int64_t splits = 1, chunks_per_split = 1, groups = 1;
};

// Of the split counts from the fewest that fit to four times that, the one whose busiest block has
// the fewest stages (its token tiles x chunks per split), the fewest splits on a tie: each split
// past the first adds a float32 reduction of dy u over the splits. With few token tiles per slot
// the fewest splits can leave blocks a tile more than others (Mixer-B fc2: 196 tiles on 132
// blocks, 24 stages for the busiest; two splits of 66 groups, 18).
inline LowRankGrid low_rank_grid(int64_t chunks, int64_t chunks_fit, int64_t token_tiles, int64_t slots) {
  if (chunks < 1 || chunks_fit < 1 || token_tiles < 1) return LowRankGrid{};  // nothing to split
  const int64_t fewest = (chunks + chunks_fit - 1) / chunks_fit;
  const int64_t most = 4 * fewest < chunks ? 4 * fewest : chunks;
  LowRankGrid best;
  int64_t best_stages = -1;
  for (int64_t splits = fewest; splits <= most; ++splits) {
    const int64_t per_split = (chunks + splits - 1) / splits;
    const int64_t fit_groups = slots / splits > 1 ? slots / splits : 1;
    const int64_t groups = token_tiles < fit_groups ? token_tiles : fit_groups;
    const int64_t stages = (token_tiles + groups - 1) / groups * per_split;
    if (best_stages < 0 || stages < best_stages) {
      best_stages = stages;
      best = LowRankGrid{splits, per_split, groups};
    }
  }
  return best;
}

}  // namespace pixelfly::kernels::cuda
