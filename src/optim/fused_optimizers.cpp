// FusedAdamW / FusedSGD: the parameters of each group are gathered into lists per device and
// dtype (and per step count for AdamW, per first step for SGD) and each list is stepped by one
// fused ATen call. State lives in LibTorch's AdamWParamState / SGDParamState, keyed as
// LibTorch keys it, so checkpoints of either optimiser load into the other.
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

}  // namespace

torch::Tensor FusedAdamW::step(LossClosure closure) {
  const torch::Tensor loss = run_closure(closure);
  at::NoGradGuard no_grad;
  struct Lists {
    std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs;
  };
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
    std::map<std::tuple<std::string, at::ScalarType, int64_t>, Lists> lists;  // (device, dtype, step)
    for (const at::Tensor& p : group.params()) {
      if (!p.grad().defined()) continue;
      const at::Tensor grad = dense_grad("FusedAdamW", p);
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
      Lists& l = lists[{p.device().str(), p.scalar_type(), state.step()}];
      l.params.push_back(p);
      l.grads.push_back(grad);
      l.exp_avgs.push_back(state.exp_avg());
      l.exp_avg_sqs.push_back(state.exp_avg_sq());
      if (options.amsgrad()) l.max_exp_avg_sqs.push_back(state.max_exp_avg_sq());
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
  struct Lists {
    std::vector<at::Tensor> params, grads, momentum_buffers;
  };
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::SGDOptions&>(group.options());
    const bool momentum = options.momentum() != 0;
    std::map<std::tuple<std::string, at::ScalarType, bool>, Lists> lists;  // (device, dtype, first step)
    for (const at::Tensor& p : group.params()) {
      if (!p.grad().defined()) continue;
      const at::Tensor grad = dense_grad("FusedSGD", p);
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
      Lists& l = lists[{p.device().str(), p.scalar_type(), first}];
      l.params.push_back(p);
      l.grads.push_back(grad);
      if (momentum) l.momentum_buffers.push_back(buffer);
    }
    for (const auto& [key, l] : lists) {
      at::_fused_sgd_(l.params, l.grads, l.momentum_buffers, options.weight_decay(), options.momentum(), options.lr(),
                      options.dampening(), options.nesterov(), /*maximize=*/false, /*is_first_step=*/std::get<2>(key));
    }
  }
  return loss;
}

}  // namespace pixelfly::optim
