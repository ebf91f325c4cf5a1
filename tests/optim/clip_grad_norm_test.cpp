// clip_grad_norm against torch::nn::utils::clip_grad_norm_: the same norm and the same scaled
// gradients when the norm is above the limit, untouched gradients below it, parameters without
// a gradient skipped; on a GPU the CUDA kernels against LibTorch on the CPU.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "pixelfly/optim/clip_grad_norm.h"

namespace pixelfly::optim {
namespace {

// Three parameters with gradients scaled by `scale`, and one without a gradient.
std::vector<at::Tensor> parameters(double scale, const at::Device& device = at::kCPU) {
  torch::manual_seed(3);
  std::vector<at::Tensor> params;
  for (const auto& shape : {std::vector<int64_t>{7, 5}, std::vector<int64_t>{5}, std::vector<int64_t>{3, 4, 2}}) {
    at::Tensor p = at::randn(shape).to(device).requires_grad_();
    p.mutable_grad() = (at::randn(shape) * scale).to(device);
    params.push_back(p);
  }
  params.push_back(at::randn({4}).to(device).requires_grad_());
  return params;
}

TEST(ClipGradNorm, MatchesLibTorch) {
  for (double scale : {10.0, 0.01}) {  // clipped, then left alone (max_norm 1)
    const std::vector<at::Tensor> ours = parameters(scale), theirs = parameters(scale);
    const at::Tensor norm = clip_grad_norm(ours, 1.0);
    const double expected = torch::nn::utils::clip_grad_norm_(theirs, 1.0);
    EXPECT_NEAR(norm.item<double>(), expected, 1e-5 * expected) << "scale " << scale;
    for (size_t i = 0; i + 1 < ours.size(); ++i) {
      EXPECT_TRUE(torch::allclose(ours[i].grad(), theirs[i].grad(), 1e-6, 1e-7)) << "scale " << scale << " parameter " << i;
    }
    EXPECT_FALSE(ours.back().grad().defined());
  }
  const std::vector<at::Tensor> clipped = parameters(10.0);
  clip_grad_norm(clipped, 1.0);
  double total = 0;
  for (size_t i = 0; i + 1 < clipped.size(); ++i) total += clipped[i].grad().pow(2).sum().item<double>();
  EXPECT_NEAR(std::sqrt(total), 1.0, 1e-5);
  EXPECT_FALSE(clip_grad_norm({at::randn({2}).requires_grad_()}, 1.0).defined());
}

TEST(ClipGradNorm, OnCudaMatchesLibTorchOnTheCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device on this machine";
  const std::vector<at::Tensor> ours = parameters(10.0, at::kCUDA), theirs = parameters(10.0);
  const at::Tensor norm = clip_grad_norm(ours, 1.0);
  EXPECT_TRUE(norm.is_cuda());
  EXPECT_NEAR(norm.item<double>(), torch::nn::utils::clip_grad_norm_(theirs, 1.0), 1e-4);
  for (size_t i = 0; i + 1 < ours.size(); ++i) {
    EXPECT_TRUE(torch::allclose(ours[i].grad().cpu(), theirs[i].grad(), 1e-5, 1e-6)) << "parameter " << i;
  }
}

}  // namespace
}  // namespace pixelfly::optim
