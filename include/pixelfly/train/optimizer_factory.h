// Optimisers from the configuration (optim.*): SGD (momentum, Nesterov) or AdamW, with weight
// decay only on tensors of two or more dimensions (weights; never biases, norm scales or the
// Pixelfly mixing weight), and CrAM wrapped around either. Both step through ATen's fused
// multi-tensor kernels (optim/fused_optimizers.h).
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <memory>

#include "pixelfly/optim/cram.h"
#include "pixelfly/train/config.h"

namespace pixelfly::train {

struct Optimizers {
  std::unique_ptr<torch::optim::Optimizer> base;  // what steps the weights
  std::unique_ptr<optim::Cram> cram;              // set when optim.name is cram (wraps base)
};

// Two parameter groups: [0] decayed (>= 2-D), [1] not decayed (< 2-D).
Optimizers make_optimizers(torch::nn::Module& model, const TrainConfig& config);

// Sets the learning rate of every parameter group.
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace pixelfly::train
