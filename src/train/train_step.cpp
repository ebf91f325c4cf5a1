// One training step, and its FLOP count.
#include "pixelfly/train/train_step.h"

#include <ATen/ATen.h>

#include <cmath>

#include "pixelfly/optim/clip_grad_norm.h"
#include "pixelfly/train/flop_counter.h"

namespace pixelfly::train {
namespace {

at::Tensor batch_loss(Session& s, const at::Tensor& inputs, const at::Tensor& targets) {
  const at::Tensor logits = autocast_forward(s.bf16_autocast, [&] { return s.model.forward(inputs); });
  return task_loss(logits, targets, s.config.label_smoothing);
}

}  // namespace

double train_step(Session& s, Optimizers& optimizers, const Batch& batch) {
  const at::Tensor inputs = batch.inputs.to(s.device, /*non_blocking=*/true);
  const at::Tensor targets = batch.targets.to(s.device, /*non_blocking=*/true);
  if (optimizers.cram) return optimizers.cram->step([&] { return batch_loss(s, inputs, targets); }).item<double>();
  optimizers.base->zero_grad();
  const double value = loss_and_gradients(s, inputs, targets).item<double>();
  if (std::isfinite(value)) optimizers.base->step();
  return value;
}

at::Tensor loss_and_gradients(Session& s, const at::Tensor& inputs, const at::Tensor& targets) {
  const at::Tensor loss = batch_loss(s, inputs, targets);
  loss.backward();
  if (s.config.grad_clip > 0) optim::clip_grad_norm(s.model.module->parameters(), s.config.grad_clip);
  return loss;
}

double training_flops_per_step(Session& s, int64_t batch_size) {
  s.data->start_evaluation();
  const std::optional<Batch> batch = s.data->next_evaluation();
  if (!batch) return 0;
  const at::Tensor one = batch->inputs.slice(0, 0, 1).to(s.device);
  torch::NoGradGuard no_grad;
  const bool was_training = s.model.module->is_training();
  s.model.module->eval();
  const double forward = count_flops([&] { autocast_forward(s.bf16_autocast, [&] { return s.model.forward(one); }); });
  s.model.module->train(was_training);
  return 3.0 * forward * static_cast<double>(batch_size);
}

}  // namespace pixelfly::train
