// Sparse fine-tuning of a pruned model with its masks held fixed: gradients are masked before
// the optimiser step and the weights re-masked after it, so pruned weights stay exactly zero
// under any optimiser (momentum, Adam moments and weight decay included). Masks are looked up
// by parameter name, the same names compressible_weights() gives.
#pragma once

#include <torch/optim/optimizer.h>

#include "pixelfly/compress/compressor.h"

namespace pixelfly::compress {

class FixedMasks {
 public:
  // Throws c10::Error naming any mask whose weight is missing or has another shape.
  FixedMasks(torch::nn::Module& model, MaskMap masks);

  // zero the pruned gradients, step, zero the pruned weights.
  void step(torch::optim::Optimizer& optimizer);
  const MaskMap& masks() const { return masks_; }

 private:
  std::vector<NamedWeight> weights_;
  MaskMap masks_;
};

}  // namespace pixelfly::compress
