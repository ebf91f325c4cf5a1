// FusedAdamW / FusedSGD: the parameters of each group are gathered into lists per device and
// dtype (and per step count for AdamW, per first step for SGD) and each list is stepped by one
// fused ATen call. State lives in LibTorch's AdamWParamState / SGDParamState, keyed as
// LibTorch keys it, so checkpoints of either optimiser load into the other. The capturable form
// keeps the learning rates (one per group) and AdamW's step counts (one per parameter, slots
// fixed at the first refresh) in float32 device buffers, written by one copy each per step.
#include "pixelfly/optim/fused_optimizers.h"

#include <ATen/ATen.h>

#include <map>
#include <tuple>

namespace pixelfly::optim {
namespace {

// A gradient as the fused kernels read it: the parameter's own (contiguous) layout.
at::Tensor dense_grad(const char* optimizer, const at::Tensor& p) {
  TORCH_CHECK(!p.grad().is_sparse(), optimizer, ": sparse gradients are not supported");
  TORCH_CHECK(p.is_contiguous(), optimizer, ": parameters must be contiguous, got one of shape ", p.sizes(),
              " with strides ", p.strides());
  return p.grad().is_contiguous() ? p.grad() : p.grad().contiguous();
}

torch::Tensor run_closure(const torch::optim::Optimizer::LossClosure& closure) {
  if (!closure) return {};
  at::AutoGradMode enable_grad(true);
  return closure();
}

// What one fused call steps: parameters of one device and dtype with their gradients and state.
struct AdamWLists {
  std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps;
  void add(const at::Tensor& p, torch::optim::AdamWParamState& state, bool amsgrad) {
    params.push_back(p);
    grads.push_back(dense_grad("FusedAdamW", p));
    exp_avgs.push_back(state.exp_avg());
    exp_avg_sqs.push_back(state.exp_avg_sq());
    if (amsgrad) max_exp_avg_sqs.push_back(state.max_exp_avg_sq());
  }
};
struct SgdLists {
  std::vector<at::Tensor> params, grads, momentum_buffers;
  // `momentum_buffer` undefined: SGD without momentum.
  void add(const at::Tensor& p, const at::Tensor& momentum_buffer) {
    params.push_back(p);
    grads.push_back(dense_grad("FusedSGD", p));
    if (momentum_buffer.defined()) momentum_buffers.push_back(momentum_buffer);
  }
};

// The device of an optimiser's parameters (that of its first one): where its device buffers live.
at::Device parameter_device(const char* optimizer, const std::vector<torch::optim::OptimizerParamGroup>& groups) {
  for (const auto& group : groups) {
    if (!group.params().empty()) return group.params().front().device();
  }
  TORCH_CHECK(false, optimizer, ": no parameters to step");
}

// Writes `values` into `buffer`, a float32 tensor on `device` made on the first call; later calls
// write into the same memory, which a captured update reads.
void upload(at::Tensor& buffer, const std::vector<float>& values, const at::Device& device) {
  const at::Tensor host = at::tensor(values, at::kFloat);
  if (!buffer.defined()) buffer = at::empty({host.numel()}, at::TensorOptions().dtype(at::kFloat).device(device));
  TORCH_CHECK(buffer.numel() == host.numel(), "optimiser device buffer holds ", buffer.numel(), " values, ",
              host.numel(), " given (the parameter groups changed after the first captured step)");
  buffer.copy_(host);
}

std::vector<float> group_learning_rates(const std::vector<torch::optim::OptimizerParamGroup>& groups) {
  std::vector<float> lr;
  for (const auto& group : groups) lr.push_back(static_cast<float>(group.options().get_lr()));
  return lr;
}

}  // namespace

torch::Tensor FusedAdamW::step(LossClosure closure) {
  const torch::Tensor loss = run_closure(closure);
  at::NoGradGuard no_grad;
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
    std::map<std::tuple<std::string, at::ScalarType, int64_t>, AdamWLists> lists;  // (device, dtype, step)
    for (const at::Tensor& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& slot = state_[p.unsafeGetTensorImpl()];
      if (!slot) {
        auto fresh = std::make_unique<torch::optim::AdamWParamState>();
        fresh->exp_avg(at::zeros_like(p));
        fresh->exp_avg_sq(at::zeros_like(p));
        if (options.amsgrad()) fresh->max_exp_avg_sq(at::zeros_like(p));
        slot = std::move(fresh);
      }
      auto& state = static_cast<torch::optim::AdamWParamState&>(*slot);
      state.step(state.step() + 1);
      lists[{p.device().str(), p.scalar_type(), state.step()}].add(p, state, options.amsgrad());
    }
    for (const auto& [key, l] : lists) {
      // The kernels read each tensor's step count from a float32 tensor on its device.
      const at::Tensor step =
          at::full({}, static_cast<double>(std::get<2>(key)), l.params[0].options().dtype(at::kFloat));
      const std::vector<at::Tensor> steps(l.params.size(), step);
      at::_fused_adamw_(l.params, l.grads, l.exp_avgs, l.exp_avg_sqs, l.max_exp_avg_sqs, steps, options.lr(),
                        std::get<0>(options.betas()), std::get<1>(options.betas()), options.weight_decay(),
                        options.eps(), options.amsgrad(), /*maximize=*/false);
    }
  }
  return loss;
}

torch::Tensor FusedSGD::step(LossClosure closure) {
  const torch::Tensor loss = run_closure(closure);
  at::NoGradGuard no_grad;
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::SGDOptions&>(group.options());
    const bool momentum = options.momentum() != 0;
    std::map<std::tuple<std::string, at::ScalarType, bool>, SgdLists> lists;  // (device, dtype, first step)
    for (const at::Tensor& p : group.params()) {
      if (!p.grad().defined()) continue;
      bool first = false;
      at::Tensor buffer;
      if (momentum) {
        auto& slot = state_[p.unsafeGetTensorImpl()];
        if (!slot) {  // the first step's kernel sets the buffer to the gradient
          auto fresh = std::make_unique<torch::optim::SGDParamState>();
          fresh->momentum_buffer(at::empty_like(p));
          slot = std::move(fresh);
          first = true;
        }
        buffer = static_cast<torch::optim::SGDParamState&>(*slot).momentum_buffer();
      }
      lists[{p.device().str(), p.scalar_type(), first}].add(p, buffer);
    }
    for (const auto& [key, l] : lists) {
      at::_fused_sgd_(l.params, l.grads, l.momentum_buffers, options.weight_decay(), options.momentum(), options.lr(),
                      options.dampening(), options.nesterov(), /*maximize=*/false, /*is_first_step=*/std::get<2>(key));
    }
  }
  return loss;
}

void FusedAdamW::refresh_device_scalars() {
  const at::Device device = parameter_device("FusedAdamW", param_groups_);
  upload(device_lr_, group_learning_rates(param_groups_), device);
  if (step_slot_.empty()) {  // slots for every parameter with state, fixed from now on
    for (const auto& group : param_groups_) {
      for (const at::Tensor& p : group.params()) {
        if (state_.count(p.unsafeGetTensorImpl()) != 0) step_slot_.emplace(p.unsafeGetTensorImpl(), step_slot_.size());
      }
    }
    TORCH_CHECK(!step_slot_.empty(), "FusedAdamW: a captured update needs one ordinary step() first (it makes the state)");
  }
  std::vector<float> next_step(step_slot_.size());
  for (const auto& [impl, slot] : step_slot_) {
    next_step[slot] = static_cast<float>(static_cast<const torch::optim::AdamWParamState&>(*state_.at(impl)).step() + 1);
  }
  upload(device_steps_, next_step, device);
}

void FusedAdamW::launch_update(const at::Tensor& found_inf) {
  TORCH_CHECK(device_lr_.defined(), "FusedAdamW: launch_update before refresh_device_scalars");
  at::NoGradGuard no_grad;
  for (size_t g = 0; g < param_groups_.size(); ++g) {
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(param_groups_[g].options());
    std::map<std::tuple<std::string, at::ScalarType>, AdamWLists> lists;
    for (const at::Tensor& p : param_groups_[g].params()) {
      if (!p.grad().defined()) continue;
      const auto slot = step_slot_.find(p.unsafeGetTensorImpl());
      TORCH_CHECK(slot != step_slot_.end(), "FusedAdamW: a parameter of shape ", p.sizes(),
                  " has a gradient but no optimiser state from before the first captured update");
      AdamWLists& l = lists[{p.device().str(), p.scalar_type()}];
      l.add(p, static_cast<torch::optim::AdamWParamState&>(*state_.at(p.unsafeGetTensorImpl())), options.amsgrad());
      l.steps.push_back(device_steps_[slot->second]);
    }
    for (const auto& [key, l] : lists) {
      at::_fused_adamw_(l.params, l.grads, l.exp_avgs, l.exp_avg_sqs, l.max_exp_avg_sqs, l.steps, device_lr_[g],
                        std::get<0>(options.betas()), std::get<1>(options.betas()), options.weight_decay(),
                        options.eps(), options.amsgrad(), /*maximize=*/false, /*grad_scale=*/{}, found_inf);
    }
  }
}

void FusedAdamW::commit_update() {
  for (const auto& group : param_groups_) {
    for (const at::Tensor& p : group.params()) {
      if (!p.grad().defined() || step_slot_.count(p.unsafeGetTensorImpl()) == 0) continue;
      auto& state = static_cast<torch::optim::AdamWParamState&>(*state_.at(p.unsafeGetTensorImpl()));
      state.step(state.step() + 1);
    }
  }
}

void FusedSGD::refresh_device_scalars() {
  upload(device_lr_, group_learning_rates(param_groups_), parameter_device("FusedSGD", param_groups_));
}

void FusedSGD::launch_update(const at::Tensor& found_inf) {
  TORCH_CHECK(device_lr_.defined(), "FusedSGD: launch_update before refresh_device_scalars");
  at::NoGradGuard no_grad;
  for (size_t g = 0; g < param_groups_.size(); ++g) {
    const auto& options = static_cast<const torch::optim::SGDOptions&>(param_groups_[g].options());
    const bool momentum = options.momentum() != 0;
    std::map<std::tuple<std::string, at::ScalarType>, SgdLists> lists;
    for (const at::Tensor& p : param_groups_[g].params()) {
      if (!p.grad().defined()) continue;
      at::Tensor buffer;
      if (momentum) {
        const auto state = state_.find(p.unsafeGetTensorImpl());
        TORCH_CHECK(state != state_.end(), "FusedSGD: a parameter of shape ", p.sizes(),
                    " has no momentum buffer from an ordinary step() before the captured update");
        buffer = static_cast<torch::optim::SGDParamState&>(*state->second).momentum_buffer();
      }
      lists[{p.device().str(), p.scalar_type()}].add(p, buffer);
    }
    for (const auto& [key, l] : lists) {
      at::_fused_sgd_(l.params, l.grads, l.momentum_buffers, options.weight_decay(), options.momentum(), device_lr_[g],
                      options.dampening(), options.nesterov(), /*maximize=*/false, /*is_first_step=*/false,
                      /*grad_scale=*/{}, found_inf);
    }
  }
}

}  // namespace pixelfly::optim
