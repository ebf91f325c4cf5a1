// BlockSparseLinear and LowRankLinear on their own: outputs equal their dense weights.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "pixelfly/nn/block_sparse_linear.h"
#include "pixelfly/nn/low_rank_linear.h"
#include "pixelfly/ops/block_sparse_ops.h"
#include "pixelfly/pattern/random_layout.h"

namespace pixelfly::nn {
namespace {

TEST(BlockSparseLinear, EqualsDenseWeightPlusBiasAndClones) {
  torch::manual_seed(6);
  BlockSparseLinear layer(BlockSparseLinearOptions(130, 100).butterfly_size(4).factors(1).block(8));
  layer->to(at::kDouble);
  const at::Tensor x = at::randn({3, 4, 130}, at::kDouble);
  const at::Tensor expected = x.matmul(layer->dense_weight().t()) + layer->bias;
  EXPECT_TRUE(at::allclose(layer->forward(x), expected, 1e-12, 1e-12));
  // The dense weight is zero outside the layout.
  const at::Tensor mask = ops::block_sparse_to_dense(at::ones_like(layer->blocks), layer->layout());
  EXPECT_EQ((layer->dense_weight() * (1 - mask)).abs().sum().item<double>(), 0.0);
  // A clone has its own parameters and computes the same function.
  auto copy = std::dynamic_pointer_cast<BlockSparseLinearImpl>(layer->clone());
  EXPECT_TRUE(at::allclose(copy->forward(x), expected, 1e-12, 1e-12));
  EXPECT_NE(copy->blocks.data_ptr(), layer->blocks.data_ptr());
}

TEST(BlockSparseLinear, TakesAnyLayoutAndWorksWithoutBias) {
  auto layout = std::make_shared<const BlockLayout>(random_layout(40, 56, 8, 0.3, 3));
  BlockSparseLinear layer(BlockSparseLinearOptions(56, 40).layout(layout).bias(false));
  EXPECT_FALSE(layer->bias.defined());
  EXPECT_EQ(layer->blocks.size(0), layout->nnz());
  const at::Tensor x = at::randn({5, 56});
  EXPECT_TRUE(at::allclose(layer->forward(x), x.matmul(layer->dense_weight().t()), 1e-5, 1e-5));
  EXPECT_EQ(layer->parameter_count(), layout->nnz() * 64);
}

TEST(LowRankLinear, EqualsUVTransposePlusBias) {
  torch::manual_seed(7);
  for (LowRankInit init : {LowRankInit::Svd, LowRankInit::Kaiming}) {
    LowRankLinear layer(LowRankLinearOptions(64, 48, 5).init(init));
    layer->to(at::kDouble);
    EXPECT_EQ(layer->u.sizes(), at::IntArrayRef({48, 5}));
    EXPECT_EQ(layer->v.sizes(), at::IntArrayRef({64, 5}));
    const at::Tensor x = at::randn({7, 64}, at::kDouble);
    EXPECT_TRUE(at::allclose(layer->forward(x), x.matmul(layer->u.matmul(layer->v.t()).t()) + layer->bias, 1e-12, 1e-12));
    EXPECT_EQ(at::linalg_matrix_rank(layer->dense_weight()).item<int64_t>(), 5);
  }
  // Kaiming: V within +-1/sqrt(in), U within +-1/sqrt(rank).
  LowRankLinear k(LowRankLinearOptions(400, 300, 9).init(LowRankInit::Kaiming));
  EXPECT_LE(k->v.abs().max().item<double>(), 1.0 / 20.0);
  EXPECT_LE(k->u.abs().max().item<double>(), 1.0 / 3.0);
  EXPECT_GE(k->u.abs().max().item<double>(), 0.9 / 3.0);
}

}  // namespace
}  // namespace pixelfly::nn
