// Gradient-norm clipping with ATen's multi-tensor kernels: the rule of
// torch::nn::utils::clip_grad_norm_ (2-norm over every gradient, scale min(1, max_norm /
// (norm + 1e-6))) in a few launches for all parameters, where LibTorch's launches two kernels per
// parameter tensor and reads the norm back to the host.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace pixelfly::optim {

// Scales the gradients of `parameters` in place; returns their global norm before clipping, a
// 0-d tensor on the first gradient's device (undefined when no parameter has a gradient).
at::Tensor clip_grad_norm(const std::vector<at::Tensor>& parameters, double max_norm);

}  // namespace pixelfly::optim
