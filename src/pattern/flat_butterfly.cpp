// Flat block butterfly masks and layouts (spec/pixelfly.md section 1).
#include "pixelfly/pattern/flat_butterfly.h"

#include <stdexcept>
#include <string>

namespace pixelfly {

int64_t exact_log2(int64_t value) {
  if (value <= 0 || (value & (value - 1)) != 0) return -1;
  int64_t log = 0;
  while ((int64_t{1} << log) < value) ++log;
  return log;
}

void validate(const FlatButterflyParams& p) {
  if (p.out_features <= 0) {
    throw std::invalid_argument("out_features must be >= 1, got " + std::to_string(p.out_features));
  }
  if (p.in_features <= 0) {
    throw std::invalid_argument("in_features must be >= 1, got " + std::to_string(p.in_features));
  }
  if (p.block <= 0) {
    throw std::invalid_argument("block must be >= 1, got " + std::to_string(p.block));
  }
  const int64_t log_n = exact_log2(p.butterfly_size);
  if (log_n < 1) {
    throw std::invalid_argument("butterfly_size must be a power of two >= 2, got " +
                                std::to_string(p.butterfly_size));
  }
  const int64_t padded_out = ceil_div(p.out_features, p.block) * p.block;
  const int64_t padded_in = ceil_div(p.in_features, p.block) * p.block;
  const int64_t max_n = std::min(padded_out, padded_in);
  if (p.butterfly_size > max_n) {
    throw std::invalid_argument("butterfly_size must be <= min(padded out, padded in) = " +
                                std::to_string(max_n) + ", got " + std::to_string(p.butterfly_size));
  }
  if (p.factors < 1 || p.factors > log_n) {
    throw std::invalid_argument("factors must be in [1, log2(butterfly_size)] = [1, " +
                                std::to_string(log_n) + "], got " + std::to_string(p.factors));
  }
}

std::vector<uint8_t> butterfly_base_mask(int64_t n, int64_t k) {
  FlatButterflyParams p;
  p.out_features = p.in_features = n;
  p.butterfly_size = n;
  p.factors = k;
  p.block = 1;
  validate(p);
  std::vector<uint8_t> mask(n * n, 0);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < n; ++c) {
      const int64_t x = r ^ c;
      mask[r * n + c] = (x == 0 || (exact_log2(x) >= 0 && x < (int64_t{1} << k))) ? 1 : 0;
    }
  }
  return mask;
}

BlockLayout flat_butterfly_layout(const FlatButterflyParams& p) {
  validate(p);
  const int64_t n = p.butterfly_size;
  const int64_t b = p.block;
  const int64_t rows = ceil_div(p.out_features, b);
  const int64_t cols = ceil_div(p.in_features, b);
  const int64_t padded_out = rows * b;
  const int64_t padded_in = cols * b;
  const std::vector<uint8_t> base = butterfly_base_mask(n, p.factors);

  // Tile row p covers elements [p*b, (p+1)*b), i.e. cells floor(p*b*n/O') .. floor(((p+1)*b-1)*n/O').
  auto first_cell = [n](int64_t tile, int64_t b_, int64_t padded) { return tile * b_ * n / padded; };
  auto last_cell = [n](int64_t tile, int64_t b_, int64_t padded) {
    return ((tile + 1) * b_ - 1) * n / padded;
  };
  std::vector<uint8_t> mask(rows * cols, 0);
  for (int64_t tr = 0; tr < rows; ++tr) {
    const int64_t r0 = first_cell(tr, b, padded_out), r1 = last_cell(tr, b, padded_out);
    for (int64_t tc = 0; tc < cols; ++tc) {
      const int64_t c0 = first_cell(tc, b, padded_in), c1 = last_cell(tc, b, padded_in);
      uint8_t any = 0;
      for (int64_t cr = r0; cr <= r1 && !any; ++cr) {
        for (int64_t cc = c0; cc <= c1 && !any; ++cc) any = base[cr * n + cc];
      }
      mask[tr * cols + tc] = any;
    }
  }
  return BlockLayout::from_block_mask(p.out_features, p.in_features, b, mask);
}

}  // namespace pixelfly
