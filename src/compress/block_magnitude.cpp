// Block magnitude pruning into block layouts.
#include "pixelfly/compress/block_magnitude.h"

#include <ATen/ATen.h>

#include <sstream>

#include "pixelfly/compress/magnitude.h"

namespace pixelfly::compress {

BlockMagnitude::BlockMagnitude(double sparsity, int64_t block) : sparsity_(sparsity), block_(block) {
  kept_count(1, sparsity);
  TORCH_CHECK(block >= 1, "block magnitude pruning: block must be >= 1, got ", block);
}

at::Tensor BlockMagnitude::tile_mask(const NamedWeight& w) const {
  const at::Tensor& weight = w.weight;
  TORCH_CHECK(weight.dim() == 2, "block magnitude pruning: weight '", w.name, "' must be 2-D (out, in), got ",
              weight.sizes());
  TORCH_CHECK(weight.size(0) % block_ == 0 && weight.size(1) % block_ == 0, "block magnitude pruning: block ", block_,
              " does not divide weight '", w.name, "' of shape ", weight.sizes());
  const int64_t rows = weight.size(0) / block_, cols = weight.size(1) / block_;
  const at::Tensor norms =
      weight.detach().to(at::kFloat).view({rows, block_, cols, block_}).pow(2).sum(at::IntArrayRef{1, 3}).flatten();
  return keep_largest(norms, kept_count(rows * cols, sparsity_)).view({rows, cols});
}

MaskMap BlockMagnitude::masks(const std::vector<NamedWeight>& weights) const {
  MaskMap out;
  for (const NamedWeight& w : weights) {
    out[w.name] = tile_mask(w).repeat_interleave(block_, 0).repeat_interleave(block_, 1);
  }
  return out;
}

std::map<std::string, BlockLayout> BlockMagnitude::layouts(const std::vector<NamedWeight>& weights) const {
  std::map<std::string, BlockLayout> out;
  for (const NamedWeight& w : weights) {
    const at::Tensor tiles = tile_mask(w).to(at::kCPU, at::kByte).contiguous();
    const std::vector<uint8_t> bits(tiles.data_ptr<uint8_t>(), tiles.data_ptr<uint8_t>() + tiles.numel());
    out.emplace(w.name, BlockLayout::from_block_mask(w.weight.size(0), w.weight.size(1), block_, bits));
  }
  return out;
}

std::string BlockMagnitude::describe() const {
  std::ostringstream s;
  s << "block magnitude, block " << block_ << ", sparsity " << sparsity_;
  return s.str();
}

}  // namespace pixelfly::compress
