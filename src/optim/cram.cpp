// The CrAM step (spec/cram.md section 1).
#include "pixelfly/optim/cram.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/batchnorm.h>

#include <sstream>

namespace pixelfly::optim {
namespace {

// Freezes the running statistics of every batch-norm layer for its lifetime: momentum 0 keeps
// running_mean and running_var as they are, and num_batches_tracked is put back afterwards.
class FrozenBatchNorm {
 public:
  explicit FrozenBatchNorm(torch::nn::Module& model) {
    // The model itself need not live in a shared_ptr, so it is visited apart from its children.
    visit(&model);
    for (const auto& m : model.modules(/*include_self=*/false)) visit(m.get());
  }
  ~FrozenBatchNorm() {
    at::NoGradGuard no_grad;
    for (Frozen& f : frozen_) {
      *f.momentum = f.saved_momentum;
      if (f.tracked.defined()) f.tracked.copy_(f.saved_tracked);
    }
  }
  FrozenBatchNorm(const FrozenBatchNorm&) = delete;
  FrozenBatchNorm& operator=(const FrozenBatchNorm&) = delete;

 private:
  struct Frozen {
    std::optional<double>* momentum;
    std::optional<double> saved_momentum;
    at::Tensor tracked, saved_tracked;
  };
  void visit(torch::nn::Module* m) {
    if (auto* bn = dynamic_cast<torch::nn::BatchNorm1dImpl*>(m)) freeze(bn->options.momentum(), bn->num_batches_tracked);
    if (auto* bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(m)) freeze(bn->options.momentum(), bn->num_batches_tracked);
    if (auto* bn = dynamic_cast<torch::nn::BatchNorm3dImpl*>(m)) freeze(bn->options.momentum(), bn->num_batches_tracked);
  }
  void freeze(std::optional<double>& momentum, const at::Tensor& tracked) {
    frozen_.push_back({&momentum, momentum, tracked, tracked.defined() ? tracked.clone() : at::Tensor()});
    momentum = 0.0;
  }
  std::vector<Frozen> frozen_;
};

}  // namespace

Cram::Cram(torch::nn::Module& model, torch::optim::Optimizer& base,
           std::vector<std::shared_ptr<compress::Compressor>> compressors, CramOptions options)
    : model_(model), base_(base), compressors_(std::move(compressors)), options_(std::move(options)), rng_(options_.seed) {
  TORCH_CHECK(!compressors_.empty(), "CrAM needs at least one compressor");
  for (const auto& c : compressors_) TORCH_CHECK(c != nullptr, "CrAM: a compressor is null");
  TORCH_CHECK(options_.rho >= 0.0, "CrAM: rho must be >= 0, got ", options_.rho);
}

at::Tensor Cram::step(const std::function<at::Tensor()>& loss) {
  std::vector<at::Tensor> params;
  for (const at::Tensor& p : model_.parameters()) {
    if (p.requires_grad()) params.push_back(p);
  }
  // 1. g1 at theta. The gradients are taken over as g1 (zero_grad then leaves them unset, so the
  // second pass allocates fresh ones): no copy.
  base_.zero_grad();
  const at::Tensor first_loss = loss();
  TORCH_CHECK(first_loss.dim() == 0, "CrAM: the loss must be a scalar, got shape ", first_loss.sizes());
  first_loss.backward();
  std::vector<at::Tensor> g1(params.size());
  std::vector<at::Tensor> with_grad, their_g1;  // the parameters that have a g1, and it
  {
    at::NoGradGuard no_grad;
    double norm_sq = 0.0;
    for (size_t i = 0; i < params.size(); ++i) {
      if (!params[i].grad().defined()) continue;
      g1[i] = params[i].grad();
      params[i].mutable_grad() = at::Tensor();
      with_grad.push_back(params[i]);
      their_g1.push_back(g1[i]);
      if (options_.normalize) norm_sq += g1[i].to(at::kDouble).pow(2).sum().item<double>();
    }
    const double scale = options_.normalize ? options_.rho / std::max(std::sqrt(norm_sq), 1e-12) : options_.rho;
    // 3. perturb every parameter (the compressed ones and all the others), in one multi-tensor pass.
    bool reusable = saved_.size() == params.size();
    for (size_t i = 0; reusable && i < params.size(); ++i) {
      reusable = saved_[i].sizes() == params[i].sizes() && saved_[i].dtype() == params[i].dtype() &&
                 saved_[i].device() == params[i].device();
    }
    if (reusable) {
      at::_foreach_copy_(saved_, params);
    } else {
      saved_.clear();
      for (const at::Tensor& p : params) saved_.push_back(p.detach().clone());
    }
    if (!with_grad.empty()) at::_foreach_add_(with_grad, their_g1, scale);
  }
  // 4-5. choose a compression and apply it to the perturbed weights.
  last_compressor_ = compressors_.size() == 1 ? 0 : static_cast<size_t>(rng_() % compressors_.size());
  const std::vector<compress::NamedWeight> weights = compress::compressible_weights(model_, options_.policy);
  const compress::MaskMap masks = compressors_[last_compressor_]->masks(weights);
  compress::apply_masks(weights, masks);
  // 6. g2 at the compressed point, batch-norm running statistics frozen.
  base_.zero_grad();
  {
    FrozenBatchNorm frozen(model_);
    loss().backward();
  }
  {
    at::NoGradGuard no_grad;
    // 7. sparse_grad.
    if (options_.sparse_grad) {
      for (const compress::NamedWeight& w : weights) {
        if (w.weight.grad().defined()) w.weight.mutable_grad().mul_(masks.at(w.name));
      }
    }
    // 8. restore theta and hand the base optimiser g2 (+ g1).
    at::_foreach_copy_(params, saved_);
    if (options_.plus) {
      std::vector<at::Tensor> grads, added;
      for (size_t i = 0; i < params.size(); ++i) {
        if (!g1[i].defined()) continue;
        if (params[i].grad().defined()) {
          grads.push_back(params[i].mutable_grad());
          added.push_back(g1[i]);
        } else {
          params[i].mutable_grad() = g1[i];
        }
      }
      if (!grads.empty()) at::_foreach_add_(grads, added);
    }
  }
  base_.step();
  return first_loss.detach();
}

std::string Cram::generator_state() const {
  std::ostringstream out;
  out << rng_;
  return out.str();
}

void Cram::set_generator_state(const std::string& state) {
  std::istringstream in(state);
  in >> rng_;
  TORCH_CHECK(!in.fail(), "CrAM: the saved generator state is not readable");
}

}  // namespace pixelfly::optim
