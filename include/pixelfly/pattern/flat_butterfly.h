// The flat block butterfly pattern of Pixelated Butterfly (spec/pixelfly.md section 1): the
// union of the first k butterfly factors of an n x n matrix, stretched over an out x in matrix
// and rounded up to whole b x b tiles.
#pragma once

#include <cstdint>
#include <vector>

#include "pixelfly/pattern/block_layout.h"

namespace pixelfly {

struct FlatButterflyParams {
  int64_t out_features = 0;
  int64_t in_features = 0;
  int64_t butterfly_size = 16;  // n: a power of two, 2 <= n <= min(padded out, padded in)
  int64_t factors = 2;          // k: 1 <= k <= log2(n)
  int64_t block = 32;           // b: >= 1
};

// Throws std::invalid_argument naming the bad parameter and its allowed range.
void validate(const FlatButterflyParams& params);

// The n x n base mask, row-major: M[r][c] = 1 iff (r XOR c) is 0 or a power of two below 2^k.
std::vector<uint8_t> butterfly_base_mask(int64_t butterfly_size, int64_t factors);

// The block layout: element (r, c) of the padded matrix lies in cell
// (floor(r * n / O'), floor(c * n / I')), and a tile is nonzero iff any of its elements lies in
// a nonzero cell. Density is (k + 1) / n when cells align with tiles, larger otherwise.
BlockLayout flat_butterfly_layout(const FlatButterflyParams& params);

// log2 of a power of two, or -1 when value is not a positive power of two.
int64_t exact_log2(int64_t value);

}  // namespace pixelfly
