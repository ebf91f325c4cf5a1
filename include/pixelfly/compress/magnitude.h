// Magnitude pruning (spec/cram.md section 2): keep the largest |w|, globally across all weights
// or layer by layer, and a selection helper shared with the other compressors.
//
// Ties: exactly k = ceil(n * (1 - sparsity)) entries are kept. Entries equal to the k-th
// largest magnitude are kept in order (lowest flat index first; across weights, registration
// order) until k are kept. (The released CrAM code keeps |w| > threshold and so drops every tie,
// keeping fewer than k.)
#pragma once

#include "pixelfly/compress/compressor.h"

namespace pixelfly::compress {

// A boolean mask of `scores` (1-D) with exactly k entries set: the k largest, ties by index.
// Uses a selection, never a sort: kthvalue (O(n)) on the CPU, an unsorted topk (multi-block
// radix selection) on CUDA.
at::Tensor keep_largest(const at::Tensor& scores, int64_t k);


// Number kept at a sparsity: ceil(n * (1 - sparsity)). Throws c10::Error unless 0 <= s < 1.
int64_t kept_count(int64_t n, double sparsity);

class GlobalMagnitude : public Compressor {
 public:
  explicit GlobalMagnitude(double sparsity);
  MaskMap masks(const std::vector<NamedWeight>& weights) const override;
  std::string describe() const override;

 private:
  double sparsity_;
};

class UniformMagnitude : public Compressor {
 public:
  explicit UniformMagnitude(double sparsity);
  MaskMap masks(const std::vector<NamedWeight>& weights) const override;
  std::string describe() const override;

 private:
  double sparsity_;
};

}  // namespace pixelfly::compress
