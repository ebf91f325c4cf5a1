// N:M semi-structured pruning (spec/cram.md section 2): in every group of M consecutive input
// weights keep the N largest by magnitude. Convolution weights (out, in, kh, kw) are grouped
// along input channels after permuting to (out, kh, kw, in); linear weights (out, in) along in.
// Ties within a group are kept lowest input index first.
#pragma once

#include "pixelfly/compress/compressor.h"

namespace pixelfly::compress {

class NMCompressor : public Compressor {
 public:
  // Throws c10::Error unless 1 <= n <= m.
  NMCompressor(int64_t n, int64_t m);
  // Throws c10::Error naming the weight when its input dimension is not divisible by M.
  MaskMap masks(const std::vector<NamedWeight>& weights) const override;
  std::string describe() const override;

 private:
  int64_t n_, m_;
};

}  // namespace pixelfly::compress
