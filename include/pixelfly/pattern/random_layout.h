// Random block layouts of a given density: baselines for benchmarks and inputs for tests.
#pragma once

#include <cstdint>

#include "pixelfly/pattern/block_layout.h"

namespace pixelfly {

// Exactly round(density * block_rows * block_cols) nonzero blocks (at least one), placed
// uniformly at random; the same seed gives the same layout on every machine.
// Throws std::invalid_argument when density is outside (0, 1] or a shape is <= 0.
BlockLayout random_layout(int64_t out_features, int64_t in_features, int64_t block,
                          double density, uint64_t seed);

}  // namespace pixelfly
