// LibTorch's AdamW and SGD with the whole step in ATen's fused multi-tensor kernels
// (_fused_adamw_, _fused_sgd_): one pass over every parameter of a device and dtype instead of
// five to ten element-wise launches per parameter tensor, which on a GPU left the step waiting
// on the host (a Pixelfly layer has five parameter tensors to a dense layer's two). The update
// rules, options, parameter state and checkpoints are those of torch::optim::AdamW / SGD.
//
// Both also step in a form that a CUDA graph can capture (CapturableStep, used by
// train/graphed_train_step.h): the kernels read the learning rate and AdamW's step count from
// device tensors that are refreshed before each replay, and skip the update on the device when a
// flag tensor says the loss was not finite.
#pragma once

#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <unordered_map>
#include <vector>

namespace pixelfly::optim {

class CapturableStep {
 public:
  virtual ~CapturableStep() = default;
  // Not captured, before each launch or replay: every group's learning rate, and the step count
  // this step reaches, into the device tensors the captured update reads. Needs one ordinary
  // step() first (it makes the optimiser state) and every parameter of a group at one step count.
  virtual void refresh_device_scalars() = 0;
  // Captured: the update of every parameter that has a gradient, skipped where `found_inf` (a
  // float tensor with one element on the parameters' device) is 1.
  virtual void launch_update(const at::Tensor& found_inf) = 0;
  // After an update that applied: the host's step counts (what checkpoints save) advance.
  virtual void commit_update() = 0;
};

class FusedAdamW : public torch::optim::AdamW, public CapturableStep {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
  void refresh_device_scalars() override;
  void launch_update(const at::Tensor& found_inf) override;
  void commit_update() override;

 private:
  at::Tensor device_lr_;     // one learning rate per group
  at::Tensor device_steps_;  // the step count each parameter reaches, at its slot
  std::unordered_map<c10::TensorImpl*, int64_t> step_slot_;
};

class FusedSGD : public torch::optim::SGD, public CapturableStep {
 public:
  using torch::optim::SGD::SGD;
  torch::Tensor step(LossClosure closure = nullptr) override;
  void refresh_device_scalars() override;
  void launch_update(const at::Tensor& found_inf) override;
  void commit_update() override {}

 private:
  at::Tensor device_lr_;  // one learning rate per group
};

}  // namespace pixelfly::optim
