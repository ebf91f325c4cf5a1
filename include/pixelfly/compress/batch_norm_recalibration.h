// Batch-norm recalibration after one-shot compression (spec/cram.md section 3): pruning shifts
// activation statistics, so every batch-norm layer's running statistics are recomputed on a
// fixed random subset of training images, with training augmentation.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <functional>
#include <vector>

namespace pixelfly::compress {

struct RecalibrationOptions {
  int64_t subset_size = 1000;  // the fixed random subset of training images
  int64_t batches = 100;
  int64_t batch_size = 128;
  double momentum = 0.1;
  uint64_t seed = 0;           // chooses the subset and the shuffles
};

// Resets every batch-norm layer (running mean 0, variance 1, momentum `options.momentum`),
// switches the model to training mode, runs `forward` without gradients on `batches` batches
// drawn replacement-free (reshuffled each pass) from a fixed random subset of
// [0, dataset_size), then switches the model to evaluation mode. `load_batch(indices)` returns
// the augmented inputs for those dataset indices; `forward(inputs)` runs the model.
// Throws c10::Error for non-positive sizes or a subset larger than the data set.
void recalibrate_batch_norm(torch::nn::Module& model, int64_t dataset_size,
                            const std::function<at::Tensor(const std::vector<int64_t>&)>& load_batch,
                            const std::function<void(const at::Tensor&)>& forward,
                            const RecalibrationOptions& options = {});

// The dataset indices recalibrate_batch_norm draws, batch by batch (for inspection and tests).
std::vector<std::vector<int64_t>> recalibration_batches(int64_t dataset_size, const RecalibrationOptions& options);

}  // namespace pixelfly::compress
