// LibTorch's AdamW and SGD with the whole step in ATen's fused multi-tensor kernels
// (_fused_adamw_, _fused_sgd_): one pass over every parameter of a device and dtype instead of
// five to ten element-wise launches per parameter tensor, which on a GPU left the step waiting
// on the host (a Pixelfly layer has five parameter tensors to a dense layer's two). The update
// rules, options, parameter state and checkpoints are those of torch::optim::AdamW / SGD.
#pragma once

#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

namespace pixelfly::optim {

class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

class FusedSGD : public torch::optim::SGD {
 public:
  using torch::optim::SGD::SGD;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace pixelfly::optim
