// FusedAdamW / FusedSGD against LibTorch's AdamW / SGD step by step: two parameter groups (with
// and without weight decay), a parameter without a gradient on some steps (its step count falls
// behind the others'), AMSGrad, momentum with and without Nesterov and dampening; state saved
// and loaded mid-run continues exactly; the capturable form (learning rate and step counts read
// from device tensors, an update skipped by a flag) steps as step() does; on a GPU the fused CUDA
// kernels against LibTorch on the CPU.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <sstream>

#include "pixelfly/optim/fused_optimizers.h"

namespace pixelfly::optim {
namespace {

using MakeOptimizer = std::function<std::unique_ptr<torch::optim::Optimizer>(std::vector<at::Tensor> decayed,
                                                                             std::vector<at::Tensor> undecayed)>;

// Three parameters (a matrix and a vector decayed apart, a second matrix) and, for each step, a
// gradient per parameter; the vector has none on step 2.
struct Problem {
  explicit Problem(const at::Device& device) {
    torch::manual_seed(5);
    for (const auto& shape : {std::vector<int64_t>{7, 5}, std::vector<int64_t>{5}, std::vector<int64_t>{3, 4}}) {
      initial.push_back(at::randn(shape).to(device));
    }
    for (int step = 0; step < kSteps; ++step) {
      std::vector<at::Tensor> g;
      for (const at::Tensor& p : initial) g.push_back(step == 2 && p.dim() == 1 ? at::Tensor() : at::randn(p.sizes()).to(device));
      grads.push_back(g);
    }
  }
  static constexpr int kSteps = 6;
  std::vector<at::Tensor> initial;
  std::vector<std::vector<at::Tensor>> grads;
};

// The parameters after `steps` steps from `from`, gradients set by hand.
std::vector<at::Tensor> train(const Problem& problem, const MakeOptimizer& make, int steps = Problem::kSteps,
                              const std::function<void(torch::optim::Optimizer&)>& midway = nullptr) {
  std::vector<at::Tensor> params;
  for (const at::Tensor& p : problem.initial) params.push_back(p.clone().requires_grad_());
  auto optimizer = make({params[0], params[2]}, {params[1]});
  for (int step = 0; step < steps; ++step) {
    if (step == steps / 2 && midway) midway(*optimizer);
    for (size_t i = 0; i < params.size(); ++i) {
      const at::Tensor& g = problem.grads[step][i];
      params[i].mutable_grad() = g.defined() ? g.to(params[i].device()) : at::Tensor();
    }
    optimizer->step();
  }
  return params;
}

void expect_close(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b, double tolerance,
                  const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const at::Tensor x = a[i].detach().cpu(), y = b[i].detach().cpu();
    EXPECT_LE((x - y).abs().max().item<double>(), tolerance * (1 + y.abs().max().item<double>()))
        << what << ", parameter " << i;
  }
}

template <class Optimizer, class Options>
MakeOptimizer groups(const Options& decayed_options, double weight_decay) {
  return [=](std::vector<at::Tensor> decayed, std::vector<at::Tensor> undecayed) {
    std::vector<torch::optim::OptimizerParamGroup> g;
    g.emplace_back(decayed, std::make_unique<Options>(Options(decayed_options).weight_decay(weight_decay)));
    g.emplace_back(undecayed, std::make_unique<Options>(Options(decayed_options).weight_decay(0.0)));
    return std::make_unique<Optimizer>(g, decayed_options);
  };
}

TEST(FusedOptimizers, AdamWMatchesLibTorch) {
  const Problem problem(at::kCPU);
  for (bool amsgrad : {false, true}) {
    const auto options = torch::optim::AdamWOptions(0.05).betas({0.8, 0.95}).eps(1e-6).amsgrad(amsgrad);
    expect_close(train(problem, groups<FusedAdamW>(options, 0.1)),
                 train(problem, groups<torch::optim::AdamW>(options, 0.1)), 1e-6,
                 amsgrad ? "AMSGrad" : "AdamW");
  }
}

TEST(FusedOptimizers, SgdMatchesLibTorch) {
  const Problem problem(at::kCPU);
  for (const auto& options : {torch::optim::SGDOptions(0.1), torch::optim::SGDOptions(0.1).momentum(0.9),
                              torch::optim::SGDOptions(0.1).momentum(0.9).nesterov(true),
                              torch::optim::SGDOptions(0.1).momentum(0.8).dampening(0.3)}) {
    const std::string what = "momentum " + std::to_string(options.momentum()) + (options.nesterov() ? " Nesterov" : "") +
                             " dampening " + std::to_string(options.dampening());
    expect_close(train(problem, groups<FusedSGD>(options, 0.01)), train(problem, groups<torch::optim::SGD>(options, 0.01)),
                 1e-6, what);
  }
}

// Saving and loading the state halfway (into a fresh optimiser of either kind) changes nothing.
TEST(FusedOptimizers, StateRoundTripsThroughLibTorchSerialisation) {
  const Problem problem(at::kCPU);
  const auto options = torch::optim::AdamWOptions(0.05);
  const auto fused = groups<FusedAdamW>(options, 0.1);
  const std::vector<at::Tensor> straight = train(problem, fused);
  auto reload = [](torch::optim::Optimizer& optimizer) {
    std::stringstream stream;
    torch::serialize::OutputArchive out;
    optimizer.save(out);
    out.save_to(stream);
    torch::serialize::InputArchive in;
    in.load_from(stream);
    optimizer.load(in);  // the same tensors' state, read back
  };
  const std::vector<at::Tensor> reloaded = train(problem, fused, Problem::kSteps, reload);
  expect_close(reloaded, straight, 0, "reloaded");
}

// After one ordinary step, the updates of the capturable form with the learning rate changed
// halfway give step()'s parameters and host step counts; a set flag leaves everything alone.
template <class Optimizer, class Options>
void expect_capturable_update_matches_step(const Options& options, const std::string& what) {
  const Problem problem(at::kCPU);
  const auto make = groups<Optimizer>(options, 0.1);
  auto halve_lr = [](torch::optim::Optimizer& o) {
    for (auto& g : o.param_groups()) g.options().set_lr(g.options().get_lr() / 2);
  };
  std::vector<at::Tensor> params;
  for (const at::Tensor& p : problem.initial) params.push_back(p.clone().requires_grad_());
  auto optimizer = make({params[0], params[2]}, {params[1]});
  auto& capturable = dynamic_cast<CapturableStep&>(*optimizer);
  for (int step = 0; step < Problem::kSteps; ++step) {
    if (step == Problem::kSteps / 2) halve_lr(*optimizer);
    for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = problem.grads[step][i];
    if (step == 0) {
      optimizer->step();
      continue;
    }
    capturable.refresh_device_scalars();
    if (step == 1) {  // a skipped update first: nothing moves
      std::vector<at::Tensor> before;
      for (const at::Tensor& p : params) before.push_back(p.detach().clone());
      capturable.launch_update(at::ones({1}));
      expect_close(params, before, 0, what + ", update skipped by the flag");
    }
    capturable.launch_update(at::zeros({1}));
    capturable.commit_update();
  }
  expect_close(params, train(problem, make, Problem::kSteps, halve_lr), 1e-6, what);
}

TEST(FusedOptimizers, CapturableUpdateMatchesStep) {
  expect_capturable_update_matches_step<FusedAdamW>(torch::optim::AdamWOptions(0.05).eps(1e-6), "AdamW");
  expect_capturable_update_matches_step<FusedAdamW>(torch::optim::AdamWOptions(0.05).amsgrad(true), "AMSGrad");
  expect_capturable_update_matches_step<FusedSGD>(torch::optim::SGDOptions(0.1).momentum(0.9).nesterov(true),
                                                  "SGD");
}

TEST(FusedOptimizers, CudaKernelsMatchLibTorchOnTheCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device on this machine";
  const Problem cpu(at::kCPU), gpu(at::kCUDA);
  const auto adamw = torch::optim::AdamWOptions(0.05).eps(1e-6);
  expect_close(train(gpu, groups<FusedAdamW>(adamw, 0.1)), train(cpu, groups<torch::optim::AdamW>(adamw, 0.1)), 1e-5,
               "AdamW on CUDA");
  const auto sgd = torch::optim::SGDOptions(0.1).momentum(0.9).nesterov(true);
  expect_close(train(gpu, groups<FusedSGD>(sgd, 0.01)), train(cpu, groups<torch::optim::SGD>(sgd, 0.01)), 1e-5,
               "SGD on CUDA");
}

}  // namespace
}  // namespace pixelfly::optim
