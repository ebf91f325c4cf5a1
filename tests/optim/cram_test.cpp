// CrAM steps against the same step computed by hand (tensors), CrAM and CrAM+, sparse_grad on
// and off, Multi drawing every compressor, batch norm frozen in the second pass, weight decay
// on the restored weights only, and a resumable generator.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "pixelfly/compress/magnitude.h"
#include "pixelfly/optim/cram.h"

namespace pixelfly::optim {
namespace {

using compress::UniformMagnitude;

// y = W x + b on a fixed batch, mean squared error.
struct TinyLinear : torch::nn::Module {
  TinyLinear() {
    fc = register_module("fc", torch::nn::Linear(4, 3));
    fc->to(at::kDouble);
  }
  torch::nn::Linear fc{nullptr};
};

struct Batch {
  at::Tensor x = at::randn({8, 4}, at::kDouble), y = at::randn({8, 3}, at::kDouble);
};

at::Tensor mse(const at::Tensor& w, const at::Tensor& b, const Batch& batch) {
  return (batch.x.matmul(w.t()) + b - batch.y).pow(2).mean();
}

// The spec's step by hand with plain SGD (lr, weight decay wd), a 50 % layer-wise magnitude
// compression of W (4 of 12 kept... rounded up: 6 of 12), returning the new (W, b).
std::pair<at::Tensor, at::Tensor> step_by_hand(const at::Tensor& w0, const at::Tensor& b0, const Batch& batch,
                                               double rho, bool plus, bool sparse_grad, double lr, double wd) {
  at::Tensor w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
  auto [g1w, g1b] = [&] {
    auto g = torch::autograd::grad({mse(w, b, batch)}, {w, b});
    return std::make_pair(g[0], g[1]);
  }();
  const at::Tensor wp = (w0 + rho * g1w), bp = (b0 + rho * g1b);
  const at::Tensor mask = compress::keep_largest(wp.abs().flatten(), 6).view(wp.sizes()).to(at::kDouble);
  at::Tensor wc = (wp * mask).requires_grad_(), bc = bp.clone().requires_grad_();
  auto g2 = torch::autograd::grad({mse(wc, bc, batch)}, {wc, bc});
  at::Tensor gw = sparse_grad ? g2[0] * mask : g2[0], gb = g2[1];
  if (plus) {
    gw = gw + g1w;
    gb = gb + g1b;
  }
  return {w0 - lr * (gw + wd * w0), b0 - lr * (gb + wd * b0)};
}

void check_against_hand(bool plus, bool sparse_grad, double wd) {
  torch::manual_seed(5);
  TinyLinear net;
  const Batch batch;
  const at::Tensor w0 = net.fc->weight.detach().clone(), b0 = net.fc->bias.detach().clone();
  torch::optim::SGD sgd(net.parameters(), torch::optim::SGDOptions(0.1).weight_decay(wd));
  CramOptions options;
  options.rho = 0.3;
  options.plus = plus;
  options.sparse_grad = sparse_grad;
  Cram cram(net, sgd, {std::make_shared<UniformMagnitude>(0.5)}, options);
  const at::Tensor loss = cram.step([&] { return mse(net.fc->weight, net.fc->bias, batch); });
  EXPECT_NEAR(loss.item<double>(), mse(w0, b0, batch).item<double>(), 1e-15);
  const auto [w1, b1] = step_by_hand(w0, b0, batch, 0.3, plus, sparse_grad, 0.1, wd);
  EXPECT_TRUE(at::allclose(net.fc->weight, w1, 1e-12, 1e-14)) << "plus " << plus << " sparse_grad " << sparse_grad;
  EXPECT_TRUE(at::allclose(net.fc->bias, b1, 1e-12, 1e-14));
}

TEST(Cram, CramPlusStepEqualsTheStepByHand) { check_against_hand(true, true, 0.0); }
TEST(Cram, CramStepEqualsTheStepByHand) { check_against_hand(false, true, 0.0); }
TEST(Cram, SparseGradOffEqualsTheStepByHand) { check_against_hand(true, false, 0.0); }
TEST(Cram, WeightDecayActsOnTheRestoredWeights) { check_against_hand(true, true, 0.05); }

TEST(Cram, NormalisedPerturbationUsesTheGlobalGradientNorm) {
  torch::manual_seed(6);
  TinyLinear a, b;
  b.fc->weight.detach().copy_(a.fc->weight);
  b.fc->bias.detach().copy_(a.fc->bias);
  const Batch batch;
  // Gradient norm of the first pass, computed by hand.
  at::Tensor w = a.fc->weight.detach().clone().requires_grad_(), bias = a.fc->bias.detach().clone().requires_grad_();
  auto g = torch::autograd::grad({mse(w, bias, batch)}, {w, bias});
  const double norm = std::sqrt((g[0].pow(2).sum() + g[1].pow(2).sum()).item<double>());
  // Normalised with rho equals unnormalised with rho / ||g1||.
  torch::optim::SGD sgd_a(a.parameters(), 0.1), sgd_b(b.parameters(), 0.1);
  CramOptions normalised;
  normalised.rho = 0.3;
  normalised.normalize = true;
  CramOptions plain;
  plain.rho = 0.3 / norm;
  Cram(a, sgd_a, {std::make_shared<UniformMagnitude>(0.5)}, normalised).step([&] { return mse(a.fc->weight, a.fc->bias, batch); });
  Cram(b, sgd_b, {std::make_shared<UniformMagnitude>(0.5)}, plain).step([&] { return mse(b.fc->weight, b.fc->bias, batch); });
  EXPECT_TRUE(at::allclose(a.fc->weight, b.fc->weight, 1e-12, 1e-14));
}

TEST(Cram, MultiDrawsEveryCompressorAndResumesTheSameDraws) {
  torch::manual_seed(7);
  TinyLinear net;
  const Batch batch;
  torch::optim::SGD sgd(net.parameters(), 0.01);
  std::vector<std::shared_ptr<compress::Compressor>> levels = {std::make_shared<UniformMagnitude>(0.3),
                                                               std::make_shared<UniformMagnitude>(0.5),
                                                               std::make_shared<UniformMagnitude>(0.7)};
  Cram cram(net, sgd, levels);
  auto loss = [&] { return mse(net.fc->weight, net.fc->bias, batch); };
  std::vector<int> counts(3, 0);
  for (int i = 0; i < 60; ++i) {
    cram.step(loss);
    ++counts[cram.last_compressor()];
  }
  for (int c : counts) EXPECT_GE(c, 8) << "each level drawn";
  // A generator restored from its saved state draws the same sequence.
  const std::string state = cram.generator_state();
  std::vector<size_t> first, second;
  for (int i = 0; i < 10; ++i) {
    cram.step(loss);
    first.push_back(cram.last_compressor());
  }
  cram.set_generator_state(state);
  for (int i = 0; i < 10; ++i) {
    cram.step(loss);
    second.push_back(cram.last_compressor());
  }
  EXPECT_EQ(first, second);
}

struct TinyBnNet : torch::nn::Module {
  TinyBnNet() {
    fc = register_module("fc", torch::nn::Linear(4, 6));
    bn = register_module("bn", torch::nn::BatchNorm1d(6));
    out = register_module("out", torch::nn::Linear(6, 2));
  }
  at::Tensor forward(const at::Tensor& x) { return out(torch::relu(bn(fc(x)))); }
  torch::nn::Linear fc{nullptr}, out{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};
};

TEST(Cram, BatchNormRunningStatisticsComeFromTheFirstPassOnly) {
  torch::manual_seed(8);
  TinyBnNet net;
  net.train();
  const at::Tensor x = at::randn({16, 4}), target = at::randn({16, 2});
  // The running statistics after one ordinary forward pass on a copy, from the same start.
  TinyBnNet reference;
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < net.parameters().size(); ++i) reference.parameters()[i].copy_(net.parameters()[i]);
  }
  reference.train();
  reference.forward(x);
  torch::optim::SGD sgd(net.parameters(), 0.1);
  Cram cram(net, sgd, {std::make_shared<UniformMagnitude>(0.5)});
  const at::Tensor mean_before = net.bn->running_mean.clone();
  cram.step([&] { return (net.forward(x) - target).pow(2).mean(); });
  EXPECT_FALSE(at::equal(net.bn->running_mean, mean_before)) << "the first pass updates them";
  EXPECT_TRUE(at::allclose(net.bn->running_mean, reference.bn->running_mean));
  EXPECT_TRUE(at::allclose(net.bn->running_var, reference.bn->running_var));
  EXPECT_EQ(net.bn->num_batches_tracked.item<int64_t>(), 1);
  EXPECT_DOUBLE_EQ(net.bn->options.momentum().value(), 0.1) << "momentum restored";
}

TEST(Cram, RejectsBadConfiguration) {
  TinyLinear net;
  torch::optim::SGD sgd(net.parameters(), 0.1);
  EXPECT_THROW(Cram(net, sgd, {}), c10::Error);
  CramOptions bad;
  bad.rho = -1;
  EXPECT_THROW(Cram(net, sgd, {std::make_shared<UniformMagnitude>(0.5)}, bad), c10::Error);
}

}  // namespace
}  // namespace pixelfly::optim
