// SGD / AdamW / CrAM with decayed and undecayed parameter groups.
#include "pixelfly/train/optimizer_factory.h"

#include "pixelfly/compress/compressor_spec.h"
#include "pixelfly/optim/fused_optimizers.h"

namespace pixelfly::train {

Optimizers make_optimizers(torch::nn::Module& model, const TrainConfig& c) {
  std::vector<at::Tensor> decayed, undecayed;
  for (const at::Tensor& p : model.parameters()) {
    if (!p.requires_grad()) continue;
    (p.dim() >= 2 ? decayed : undecayed).push_back(p);
  }
  const std::string base = c.optimizer == "cram" ? c.cram_base : c.optimizer;
  Optimizers o;
  if (base == "sgd") {
    auto options = [&](double wd) {
      return std::make_unique<torch::optim::SGDOptions>(
          torch::optim::SGDOptions(c.lr).momentum(c.momentum).nesterov(c.nesterov).weight_decay(wd));
    };
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decayed, options(c.weight_decay));
    groups.emplace_back(undecayed, options(0.0));
    o.base = std::make_unique<optim::FusedSGD>(groups, torch::optim::SGDOptions(c.lr));
  } else {
    auto options = [&](double wd) {
      return std::make_unique<torch::optim::AdamWOptions>(
          torch::optim::AdamWOptions(c.lr).betas({c.beta1, c.beta2}).eps(c.eps).weight_decay(wd));
    };
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decayed, options(c.weight_decay));
    groups.emplace_back(undecayed, options(0.0));
    o.base = std::make_unique<optim::FusedAdamW>(groups, torch::optim::AdamWOptions(c.lr));
  }
  if (c.optimizer == "cram") {
    std::vector<std::shared_ptr<compress::Compressor>> compressors;
    for (const std::string& spec : c.cram_compressors) compressors.push_back(compress::parse_compressor(spec));
    optim::CramOptions options;
    options.rho = c.cram_rho;
    options.plus = c.cram_plus;
    options.sparse_grad = c.cram_sparse_grad;
    options.normalize = c.cram_normalize;
    options.seed = c.seed;
    options.policy.keep_first_dense = c.keep_first_dense;
    options.policy.keep_last_dense = c.keep_last_dense;
    o.cram = std::make_unique<optim::Cram>(model, *o.base, std::move(compressors), options);
  }
  return o;
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

}  // namespace pixelfly::train
