// Batch-norm recalibration on a fixed random subset of training data.
#include "pixelfly/compress/batch_norm_recalibration.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/batchnorm.h>

#include <algorithm>
#include <numeric>
#include <random>

namespace pixelfly::compress {
namespace {

template <typename Impl>
bool reset_if(torch::nn::Module* m, double momentum) {
  auto* bn = dynamic_cast<Impl*>(m);
  if (bn == nullptr) return false;
  bn->reset_running_stats();
  bn->options.momentum(momentum);
  return true;
}

void reset(torch::nn::Module* m, double momentum) {
  reset_if<torch::nn::BatchNorm1dImpl>(m, momentum) || reset_if<torch::nn::BatchNorm2dImpl>(m, momentum) ||
      reset_if<torch::nn::BatchNorm3dImpl>(m, momentum);
}

}  // namespace

std::vector<std::vector<int64_t>> recalibration_batches(int64_t dataset_size, const RecalibrationOptions& o) {
  TORCH_CHECK(dataset_size > 0, "batch-norm recalibration: the data set is empty");
  TORCH_CHECK(o.subset_size > 0 && o.subset_size <= dataset_size, "batch-norm recalibration: subset_size must be in [1, ",
              dataset_size, "], got ", o.subset_size);
  TORCH_CHECK(o.batches > 0 && o.batch_size > 0, "batch-norm recalibration: batches and batch_size must be >= 1, got ",
              o.batches, " and ", o.batch_size);
  std::mt19937_64 rng(o.seed);
  std::vector<int64_t> all(dataset_size);
  std::iota(all.begin(), all.end(), 0);
  // The fixed subset: a partial Fisher-Yates draw.
  for (int64_t i = 0; i < o.subset_size; ++i) {
    std::swap(all[i], all[i + static_cast<int64_t>(rng() % static_cast<uint64_t>(dataset_size - i))]);
  }
  std::vector<int64_t> subset(all.begin(), all.begin() + o.subset_size), order;
  std::vector<std::vector<int64_t>> batches;
  size_t next = 0;
  for (int64_t b = 0; b < o.batches; ++b) {
    std::vector<int64_t> batch;
    while (static_cast<int64_t>(batch.size()) < std::min(o.batch_size, o.subset_size)) {
      if (next == order.size()) {  // a new replacement-free pass over the subset
        order = subset;
        for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
        next = 0;
      }
      batch.push_back(order[next++]);
    }
    batches.push_back(std::move(batch));
  }
  return batches;
}

void recalibrate_batch_norm(torch::nn::Module& model, int64_t dataset_size,
                            const std::function<at::Tensor(const std::vector<int64_t>&)>& load_batch,
                            const std::function<void(const at::Tensor&)>& forward, const RecalibrationOptions& options) {
  const auto batches = recalibration_batches(dataset_size, options);
  reset(&model, options.momentum);
  for (const auto& m : model.modules(/*include_self=*/false)) reset(m.get(), options.momentum);
  model.train();
  {
    at::NoGradGuard no_grad;
    for (const auto& indices : batches) forward(load_batch(indices));
  }
  model.eval();
}

}  // namespace pixelfly::compress
