// The data a training run reads, whatever the task: batches of (inputs, targets) for training
// epochs and for evaluation, built from the run's configuration (data.* keys). Images:
// Fashion-MNIST, any MNIST-layout directory, CIFAR-10 or synthetic images, normalised with the
// training split's own per-channel mean and standard deviation. Text: byte windows of a corpus
// (or a synthetic token stream) for causal language modelling.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pixelfly/models/model_zoo.h"
#include "pixelfly/train/config.h"

namespace pixelfly::train {

struct Batch {
  at::Tensor inputs;   // images float32 (B, C, H, W), or tokens int64 (B, T)
  at::Tensor targets;  // labels int64 (B), or next tokens int64 (B, T)
};

class TrainingData {
 public:
  virtual ~TrainingData() = default;
  virtual models::Task task() const = 0;
  // Training batches per epoch.
  virtual int64_t batches_per_epoch() const = 0;
  // Starts epoch `epoch` of training batches (order and augmentation depend only on the seed
  // and the epoch), skipping its first `skip` batches (a resumed run).
  virtual void start_epoch(int64_t epoch, int64_t skip) = 0;
  virtual std::optional<Batch> next() = 0;
  // Evaluation batches, from the first, in order (capped by data.eval_batches).
  virtual void start_evaluation() = 0;
  virtual std::optional<Batch> next_evaluation() = 0;
  // Training examples (images) and their inputs with training augmentation, for batch-norm
  // recalibration after pruning (image tasks; text tasks throw).
  virtual int64_t training_examples() const = 0;
  virtual at::Tensor training_inputs(const std::vector<int64_t>& indices) const = 0;
  // What the model must accept: fills image_size/in_channels/classes or vocab_size/context.
  virtual void describe_to(models::ModelConfig& model) const = 0;
  // One line for the console, e.g. "fashion-mnist: 60000 train / 10000 test images, 1x28x28".
  virtual std::string summary() const = 0;
};

// Throws std::runtime_error / c10::Error from the readers (naming the file and the problem).
std::unique_ptr<TrainingData> make_training_data(const TrainConfig& config);

}  // namespace pixelfly::train
