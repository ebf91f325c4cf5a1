// Test helpers for the model tests: a few optimiser steps on one fixed batch (does the model
// learn at all?) and a membership check on parameter names.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace pixelfly::testing {

// Runs `steps` optimiser steps on `loss` (which computes the loss of the same batch each time)
// and returns the first and the last loss.
inline std::pair<double, double> first_and_last_loss(torch::optim::Optimizer& optimizer,
                                                     const std::function<at::Tensor()>& loss, int steps = 10) {
  double first = 0, last = 0;
  for (int step = 0; step < steps; ++step) {
    optimizer.zero_grad();
    const at::Tensor value = loss();
    value.backward();
    optimizer.step();
    (step == 0 ? first : last) = value.item<double>();
  }
  return {first, last};
}

inline bool has(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace pixelfly::testing
