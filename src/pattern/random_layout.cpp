// Uniformly random block layouts with an exact block count (deterministic per seed).
#include "pixelfly/pattern/random_layout.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>

namespace pixelfly {

BlockLayout random_layout(int64_t out_features, int64_t in_features, int64_t block,
                          double density, uint64_t seed) {
  if (!(density > 0.0 && density <= 1.0)) {
    throw std::invalid_argument("density must be in (0, 1], got " + std::to_string(density));
  }
  if (out_features <= 0 || in_features <= 0 || block <= 0) {
    throw std::invalid_argument("out_features, in_features and block must be >= 1, got " +
                                std::to_string(out_features) + ", " + std::to_string(in_features) +
                                ", " + std::to_string(block));
  }
  const int64_t rows = ceil_div(out_features, block);
  const int64_t cols = ceil_div(in_features, block);
  const int64_t total = rows * cols;
  const int64_t keep = std::clamp<int64_t>(std::llround(density * total), 1, total);
  // Partial Fisher-Yates with our own draw, so the result does not depend on the standard
  // library's distribution implementation.
  std::vector<int64_t> order(total);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < keep; ++i) {
    const int64_t j = i + static_cast<int64_t>(rng() % static_cast<uint64_t>(total - i));
    std::swap(order[i], order[j]);
  }
  std::vector<uint8_t> mask(total, 0);
  for (int64_t i = 0; i < keep; ++i) mask[order[i]] = 1;
  return BlockLayout::from_block_mask(out_features, in_features, block, mask);
}

}  // namespace pixelfly
