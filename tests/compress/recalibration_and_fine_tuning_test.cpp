// Batch-norm recalibration (fixed subset, replacement-free batches, statistics recomputed) and
// sparse fine-tuning with fixed masks under SGD with momentum and AdamW.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "pixelfly/compress/batch_norm_recalibration.h"
#include "pixelfly/compress/fixed_masks.h"
#include "pixelfly/compress/magnitude.h"

namespace pixelfly::compress {
namespace {

TEST(BatchNormRecalibration, DrawsFromOneFixedSubsetWithoutReplacementPerPass) {
  RecalibrationOptions o;
  o.subset_size = 10;
  o.batches = 7;
  o.batch_size = 4;
  o.seed = 3;
  const auto batches = recalibration_batches(100, o);
  ASSERT_EQ(batches.size(), 7u);
  std::set<int64_t> used;
  std::vector<int64_t> flat;
  for (const auto& b : batches) {
    EXPECT_EQ(b.size(), 4u);
    for (int64_t i : b) {
      used.insert(i);
      flat.push_back(i);
      EXPECT_GE(i, 0);
      EXPECT_LT(i, 100);
    }
  }
  EXPECT_EQ(used.size(), 10u) << "exactly the subset";
  // Each pass of 10 draws covers the subset once.
  for (size_t pass = 0; pass + 10 <= flat.size(); pass += 10) {
    EXPECT_EQ(std::set<int64_t>(flat.begin() + pass, flat.begin() + pass + 10).size(), 10u);
  }
  EXPECT_EQ(recalibration_batches(100, o), batches) << "deterministic per seed";
  o.subset_size = 101;
  EXPECT_THROW(recalibration_batches(100, o), c10::Error);
}

struct BnNet : torch::nn::Module {
  BnNet() {
    fc = register_module("fc", torch::nn::Linear(3, 5));
    bn = register_module("bn", torch::nn::BatchNorm1d(5));
  }
  at::Tensor forward(const at::Tensor& x) { return bn(fc(x)); }
  torch::nn::Linear fc{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};
};

TEST(BatchNormRecalibration, RecomputesRunningStatisticsFromTheSubset) {
  torch::manual_seed(0);
  BnNet net;
  net.eval();
  const at::Tensor data = at::randn({50, 3}) * 2 + 1;
  RecalibrationOptions o;
  o.subset_size = 50;
  o.batches = 300;
  o.batch_size = 50;  // every batch is the whole data set: the running mean converges to its mean
  recalibrate_batch_norm(
      net, 50, [&](const std::vector<int64_t>& idx) { return data.index_select(0, at::tensor(idx)); },
      [&](const at::Tensor& x) { net.forward(x); }, o);
  EXPECT_FALSE(net.is_training());
  const at::Tensor features = net.fc(data).detach();
  EXPECT_TRUE(at::allclose(net.bn->running_mean, features.mean(0), 1e-4, 1e-4));
  EXPECT_TRUE(at::allclose(net.bn->running_var, features.var(0, /*unbiased=*/true), 1e-3, 1e-3));
  EXPECT_DOUBLE_EQ(net.bn->options.momentum().value(), 0.1);
}

struct Mlp : torch::nn::Module {
  Mlp() {
    a = register_module("a", torch::nn::Linear(6, 8));
    b = register_module("b", torch::nn::Linear(8, 2));
  }
  at::Tensor forward(const at::Tensor& x) { return b(torch::relu(a(x))); }
  torch::nn::Linear a{nullptr}, b{nullptr};
};

void expect_pruned_weights_stay_zero(torch::optim::Optimizer& optimizer, Mlp& net) {
  const auto weights = compressible_weights(net, {});
  FixedMasks fixed(net, GlobalMagnitude(0.6).masks(weights));
  const at::Tensor x = at::randn({32, 6}), y = at::randn({32, 2});
  const at::Tensor before = net.a->weight.detach().clone();
  for (int i = 0; i < 20; ++i) {
    optimizer.zero_grad();
    (net.forward(x) - y).pow(2).mean().backward();
    fixed.step(optimizer);
  }
  for (const NamedWeight& w : weights) {
    const at::Tensor pruned = ~fixed.masks().at(w.name).to(at::kBool);
    EXPECT_EQ(w.weight.masked_select(pruned).abs().sum().item<float>(), 0.0f) << w.name;
  }
  const at::Tensor kept = fixed.masks().at("a.weight").to(at::kBool);
  EXPECT_FALSE(at::equal(net.a->weight.masked_select(kept), before.masked_select(kept))) << "kept weights train";
}

TEST(FixedMasks, PrunedWeightsStayZeroUnderSgdWithMomentumAndWeightDecay) {
  torch::manual_seed(1);
  Mlp net;
  // A dense optimiser state first, so momentum buffers are nonzero where weights get pruned.
  torch::optim::SGD sgd(net.parameters(), torch::optim::SGDOptions(0.05).momentum(0.9).weight_decay(1e-2));
  const at::Tensor x = at::randn({16, 6});
  net.forward(x).pow(2).mean().backward();
  sgd.step();
  expect_pruned_weights_stay_zero(sgd, net);
}

TEST(FixedMasks, PrunedWeightsStayZeroUnderAdamW) {
  torch::manual_seed(2);
  Mlp net;
  torch::optim::AdamW adamw(net.parameters(), torch::optim::AdamWOptions(1e-2).weight_decay(0.1));
  expect_pruned_weights_stay_zero(adamw, net);
}

TEST(FixedMasks, RejectsMasksForUnknownOrMisshapenWeights) {
  Mlp net;
  EXPECT_THROW(FixedMasks(net, {{"c.weight", at::ones({2, 2})}}), c10::Error);
  EXPECT_THROW(FixedMasks(net, {{"a.weight", at::ones({2, 2})}}), c10::Error);
}

}  // namespace
}  // namespace pixelfly::compress
