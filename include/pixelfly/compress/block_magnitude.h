// Block magnitude pruning: keep, in each 2-D weight, the b x b tiles with the largest Frobenius
// norm (exactly ceil(tiles * (1 - sparsity)), ties by tile index). The kept tiles form a
// BlockLayout that the block-sparse operators run directly, so a dense model trained with CrAM
// becomes a block-sparse model in one shot.
#pragma once

#include "pixelfly/compress/compressor.h"
#include "pixelfly/pattern/block_layout.h"

namespace pixelfly::compress {

class BlockMagnitude : public Compressor {
 public:
  // Throws c10::Error unless 0 <= sparsity < 1 and block >= 1.
  BlockMagnitude(double sparsity, int64_t block);
  // Throws c10::Error naming the weight when it is not 2-D or the block does not divide it.
  MaskMap masks(const std::vector<NamedWeight>& weights) const override;
  std::string describe() const override;
  // The kept tiles of each weight as a block layout (out x in, this block size).
  std::map<std::string, BlockLayout> layouts(const std::vector<NamedWeight>& weights) const;

 private:
  // (rows / b) x (cols / b) boolean tile mask of one weight.
  at::Tensor tile_mask(const NamedWeight& weight) const;
  double sparsity_;
  int64_t block_;
};

}  // namespace pixelfly::compress
