// Mixed precision: under CPU autocast to bfloat16 the Pixelfly and block-sparse layers (float32
// parameters) compute in bfloat16, as torch::nn::Linear does, and their gradients reach the
// float32 parameters; values and gradients match a float64 reference within bfloat16 tolerance.
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "pixelfly/nn/block_sparse_linear.h"
#include "pixelfly/nn/pixelfly_linear.h"
#include "pixelfly/ops/block_sparse_ops.h"
#include "pixelfly/ops/pixelfly_linear_ops.h"

namespace pixelfly {
namespace {

// CPU autocast to bfloat16 for the guard's lifetime; the previous state is restored after.
class CpuAutocast {
 public:
  CpuAutocast()
      : was_enabled_(at::autocast::is_autocast_enabled(at::kCPU)),
        previous_dtype_(at::autocast::get_autocast_dtype(at::kCPU)) {
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCPU, true);
  }
  ~CpuAutocast() {
    at::autocast::set_autocast_enabled(at::kCPU, was_enabled_);
    at::autocast::set_autocast_dtype(at::kCPU, previous_dtype_);
    at::autocast::clear_cache();
  }

 private:
  bool was_enabled_;
  at::ScalarType previous_dtype_;
};

double relative_error(const at::Tensor& out, const at::Tensor& ref) {
  return (out.to(at::kDouble) - ref).norm().item<double>() / ref.norm().item<double>();
}

// A float64 leaf copy of `t`.
at::Tensor f64_leaf(const at::Tensor& t) { return t.detach().to(at::kDouble).requires_grad_(); }

TEST(Autocast, PixelflyLinearComputesInBfloat16AndTrainsFloat32Parameters) {
  torch::manual_seed(0);
  nn::PixelflyLinear layer(nn::PixelflyLinearOptions(64, 96).butterfly_size(4).factors(2).block(16).rank(4));
  const at::Tensor x = torch::randn({3, 5, 64});
  const at::Tensor weights = torch::randn({3, 5, 96});  // the loss is sum(y * weights)

  ASSERT_EQ(layer(x).scalar_type(), at::kFloat);  // outside autocast: float32
  at::Tensor y;
  {
    CpuAutocast autocast;
    y = layer(x);
  }
  EXPECT_EQ(y.scalar_type(), at::kBFloat16);
  EXPECT_FALSE(at::autocast::is_autocast_enabled(at::kCPU));
  // The parameters are cast inside the operator and the mix's sigmoid applied there: its graph
  // node leads straight to the five float32 leaves (blocks, u, v, mix logit, bias), with no cast
  // or sigmoid node between.
  int other_nodes = 0, leaves = 0;
  for (const auto& edge : y.grad_fn()->next_edges()) {
    if (!edge.function) continue;
    const bool leaf = edge.function->name().find("AccumulateGrad") != std::string::npos;
    leaves += leaf;
    other_nodes += !leaf;
  }
  EXPECT_EQ(other_nodes, 0);
  EXPECT_EQ(leaves, 5);
  (y.to(at::kFloat) * weights).sum().backward();

  // The float64 reference: the same operator on float64 copies of the parameters.
  const at::Tensor blocks = f64_leaf(layer->sparse->blocks), u = f64_leaf(layer->low_rank->u),
                   v = f64_leaf(layer->low_rank->v), logit = f64_leaf(layer->mix_logit), bias = f64_leaf(layer->bias);
  const at::Tensor ref = ops::pixelfly_linear(x.to(at::kDouble), blocks, layer->sparse->layout(), u, v,
                                              at::sigmoid(logit), bias);
  (ref * weights.to(at::kDouble)).sum().backward();

  EXPECT_LT(relative_error(y, ref), 1e-2);
  EXPECT_GT(relative_error(y, ref), 1e-6);  // really rounded to bfloat16
  const std::vector<std::pair<at::Tensor, at::Tensor>> grads = {
      {layer->sparse->blocks, blocks}, {layer->low_rank->u, u}, {layer->low_rank->v, v}, {layer->bias, bias}};
  for (size_t i = 0; i < grads.size(); ++i) {
    const at::Tensor& grad = grads[i].first.grad();
    ASSERT_TRUE(grad.defined()) << "parameter " << i;
    EXPECT_EQ(grad.scalar_type(), at::kFloat) << "parameter " << i;
    EXPECT_LT(relative_error(grad, grads[i].second.grad()), 2e-2) << "parameter " << i;
  }
  // The mixing logit's gradient is sigmoid'(0) (<dy, x B^T> - <dy, x V U^T>), a difference of two
  // nearly equal sums: its error is bounded by bfloat16 rounding of the two sums, not of it.
  const at::Tensor& logit_grad = layer->mix_logit.grad();
  ASSERT_TRUE(logit_grad.defined());
  EXPECT_EQ(logit_grad.scalar_type(), at::kFloat);
  const at::Tensor dy = weights.to(at::kDouble), x64 = x.to(at::kDouble);
  const double sparse_term =
      (dy * ops::block_sparse_linear(x64, blocks, layer->sparse->layout())).sum().abs().item<double>();
  const double low_rank_term = (dy * at::matmul(at::matmul(x64, v), u.t())).sum().abs().item<double>();
  EXPECT_NEAR(logit_grad.item<double>(), logit.grad().item<double>(), 0.25 * 3e-2 * (sparse_term + low_rank_term));
}

TEST(Autocast, BlockSparseLinearComputesInBfloat16) {
  torch::manual_seed(0);
  // Without bias: the module adds its float32 bias after the operator, which promotes to float32.
  nn::BlockSparseLinear layer(
      nn::BlockSparseLinearOptions(64, 96).butterfly_size(4).factors(2).block(16).bias(false));
  const at::Tensor x = torch::randn({15, 64});
  at::Tensor y;
  {
    CpuAutocast autocast;
    y = layer(x);
  }
  EXPECT_EQ(y.scalar_type(), at::kBFloat16);
  y.to(at::kFloat).sum().backward();
  ASSERT_TRUE(layer->blocks.grad().defined());
  EXPECT_EQ(layer->blocks.grad().scalar_type(), at::kFloat);

  const at::Tensor blocks = f64_leaf(layer->blocks);
  const at::Tensor ref = ops::block_sparse_linear(x.to(at::kDouble), blocks, layer->layout());
  ref.sum().backward();
  EXPECT_LT(relative_error(y, ref), 1e-2);
  EXPECT_LT(relative_error(layer->blocks.grad(), blocks.grad()), 2e-2);
}

}  // namespace
}  // namespace pixelfly
