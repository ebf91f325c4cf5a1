// Fixed masks for sparse fine-tuning.
#include "pixelfly/compress/fixed_masks.h"

#include <ATen/ATen.h>

namespace pixelfly::compress {

FixedMasks::FixedMasks(torch::nn::Module& model, MaskMap masks) : masks_(std::move(masks)) {
  const auto params = model.named_parameters(/*recurse=*/true);
  for (const auto& [name, mask] : masks_) {
    const at::Tensor* weight = params.find(name);
    TORCH_CHECK(weight != nullptr, "fixed masks: the model has no parameter named '", name, "'");
    TORCH_CHECK(weight->sizes() == mask.sizes(), "fixed masks: mask for '", name, "' has shape ", mask.sizes(),
                " but the parameter has ", weight->sizes());
    weights_.push_back({name, *weight});
    masks_[name] = mask.to(weight->device(), weight->scalar_type());
  }
  apply_masks(weights_, masks_);
}

void FixedMasks::step(torch::optim::Optimizer& optimizer) {
  {
    at::NoGradGuard no_grad;
    for (const NamedWeight& w : weights_) {
      if (w.weight.grad().defined()) w.weight.mutable_grad().mul_(masks_.at(w.name));
    }
  }
  optimizer.step();
  apply_masks(weights_, masks_);
}

}  // namespace pixelfly::compress
