// What train, eval and prune share: a resolved configuration turned into a device, the data and
// the model (moved to the device), plus evaluation of the model on the test or validation split.
#pragma once

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <ostream>

#include "pixelfly/models/model_zoo.h"
#include "pixelfly/train/config.h"
#include "pixelfly/train/training_data.h"

namespace pixelfly::train {

struct Session {
  TrainConfig config;
  nlohmann::json resolved;  // the JSON the config came from
  c10::Device device = c10::Device(c10::kCPU);
  bool bf16_autocast = false;
  std::unique_ptr<TrainingData> data;
  models::Model model;
};

// "auto" -> cuda when a GPU is present, else cpu. Throws std::invalid_argument for cuda on a
// machine without one.
c10::Device resolve_device(const std::string& device);

// Seeds LibTorch, sets the thread count, builds data and model, prints one line about each
// (and the planner's table for a Pixelfly model) to `out`.
Session open_session(const nlohmann::json& resolved, std::ostream& out);

struct Evaluation {
  double loss = 0;          // mean cross-entropy per example (images) or per byte (text), nats
  double accuracy = 0;      // top-1 (images) or next-byte accuracy (text)
  double bits_per_byte = 0; // text only: loss / ln 2
  int64_t examples = 0;     // images or predicted bytes
};

// Evaluates the model in eval mode on the evaluation split (restores the previous mode).
Evaluation evaluate(Session& session);

// Scalar loss of one batch in the task's form (logits (B, classes) or (B, T, vocab)).
at::Tensor task_loss(const at::Tensor& logits, const at::Tensor& targets, double label_smoothing);

// Runs `forward` under bfloat16 autocast when `enabled` (CUDA), plainly otherwise.
at::Tensor autocast_forward(bool enabled, const std::function<at::Tensor()>& forward);

}  // namespace pixelfly::train
