// The tensor-core kernels' grid shapes (kernels/cuda/launch_shape.h): weight-gradient token
// splits that fill the last wave, and persistent block counts coprime to the groups.
#include <gtest/gtest.h>

#include <numeric>

#include "kernels/cuda/launch_shape.h"

namespace pixelfly {
namespace {

using kernels::cuda::gradient_split_tokens;
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

}  // namespace
}  // namespace pixelfly
