// FLOP counting against hand counts: dense matrix products (Linear, bmm), convolutions,
// attention and the block-sparse and Pixelfly operators, forward and backward, with operators
// nested inside a counted one not counted again.
#include "pixelfly/train/flop_counter.h"

#include "pixelfly/nn/block_sparse_linear.h"
#include "pixelfly/nn/pixelfly_linear.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

namespace pixelfly::train {
namespace {

TEST(FlopCounter, LinearCountsTwoFlopsPerMultiplyAddAndNothingForTheBias) {
  torch::manual_seed(0);
  torch::nn::Linear with_bias(12, 20), without_bias(torch::nn::LinearOptions(12, 20).bias(false));
  const at::Tensor x2 = at::randn({35, 12}), x3 = at::randn({5, 7, 12});
  const double expected = 2.0 * 35 * 12 * 20;
  EXPECT_EQ(count_flops([&] { with_bias(x2); }), expected);     // addmm
  EXPECT_EQ(count_flops([&] { with_bias(x3); }), expected);     // matmul on 3-d input
  EXPECT_EQ(count_flops([&] { without_bias(x2); }), expected);  // mm
  EXPECT_EQ(count_flops([&] { at::relu(x2).sum(); }), 0.0);     // element-wise work is left out
}

TEST(FlopCounter, LinearBackwardIsTwiceItsForward) {
  torch::manual_seed(0);
  torch::nn::Linear linear(12, 20);
  const at::Tensor x = torch::randn({5, 7, 12}, torch::requires_grad());
  EXPECT_EQ(count_flops([&] { linear(x).sum().backward(); }), 3 * 2.0 * 35 * 12 * 20);
}

TEST(FlopCounter, ConvolutionCountsOutputsTimesInputChannelsPerGroupTimesKernelArea) {
  torch::manual_seed(0);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(6, 8, {3, 5}).groups(2).stride(2).padding(1));
  const at::Tensor x = at::randn({2, 6, 11, 13});
  const at::Tensor y = conv(x);
  ASSERT_EQ(y.sizes(), (at::IntArrayRef{2, 8, 6, 6}));
  EXPECT_EQ(count_flops([&] { conv(x); }), 2.0 * (2 * 8 * 6 * 6) * (6 / 2 * 3 * 5));
}

TEST(FlopCounter, BatchedMatrixProducts) {
  const at::Tensor a = at::randn({4, 5, 6}), b = at::randn({4, 6, 7}), c = at::randn({4, 5, 7});
  EXPECT_EQ(count_flops([&] { at::bmm(a, b); }), 2.0 * 4 * 5 * 6 * 7);
  EXPECT_EQ(count_flops([&] { at::baddbmm(c, a, b); }), 2.0 * 4 * 5 * 6 * 7);
  EXPECT_EQ(count_flops([&] { at::matmul(a, b); }), 2.0 * 4 * 5 * 6 * 7);  // its inner bmm once
}

TEST(FlopCounter, ScaledDotProductAttention) {
  // q (B=2, H=3, T=8, D=16), k and v (S=10): QK^T and PV.
  const at::Tensor q = torch::randn({2, 3, 8, 16}, torch::requires_grad());
  const at::Tensor k = torch::randn({2, 3, 10, 16}, torch::requires_grad());
  const at::Tensor v = torch::randn({2, 3, 10, 16}, torch::requires_grad());
  const double forward = 2.0 * 2 * (2 * 3 * 8 * 10 * 16);
  EXPECT_EQ(count_flops([&] { at::scaled_dot_product_attention(q, k, v); }), forward);
  EXPECT_EQ(count_flops([&] { at::scaled_dot_product_attention(q, k, v).sum().backward(); }), 3 * forward);
}

TEST(FlopCounter, BlockSparseLinearCountsItsStoredBlocksOnly) {
  torch::manual_seed(0);
  nn::BlockSparseLinear layer(nn::BlockSparseLinearOptions(64, 128).butterfly_size(4).factors(2).block(16));
  const int64_t nnz = layer->blocks.size(0);
  ASSERT_LT(nnz * 16 * 16, 64 * 128);  // really sparse
  const at::Tensor x = torch::randn({3, 5, 64}, torch::requires_grad());
  const double forward = 2.0 * 15 * nnz * 16 * 16;
  EXPECT_EQ(count_flops([&] { layer(x); }), forward);
  EXPECT_EQ(count_flops([&] { layer(x).sum().backward(); }), 3 * forward);  // grad_input and grad_weight
}

TEST(FlopCounter, PixelflyLinearCountsSparseAndLowRankPartsOnce) {
  torch::manual_seed(0);
  nn::PixelflyLinear layer(nn::PixelflyLinearOptions(64, 128).butterfly_size(4).factors(2).block(16).rank(4));
  const int64_t nnz = layer->sparse->blocks.size(0), r = 4;
  const at::Tensor x = torch::randn({3, 5, 64}, torch::requires_grad());
  // x v (tokens x in x r), then mixed_linear: blocks and (x v) u^T; the block-sparse product and
  // matmul inside mixed_linear are not counted again.
  const double forward = 2.0 * 15 * (nnz * 16 * 16 + r * (64 + 128));
  EXPECT_EQ(count_flops([&] { layer(x); }), forward);
  // The backward also multiplies dy by the column of ones that gives the bias gradient.
  const double bias_column = 2.0 * 15 * 128;
  EXPECT_EQ(count_flops([&] { layer(x).sum().backward(); }), 3 * forward + bias_column);
}

TEST(FlopCounter, StopsCountingAfterTheCallAndRethrows) {
  const at::Tensor a = at::randn({4, 4});
  EXPECT_THROW(count_flops([&] {
                 at::mm(a, a);
                 throw std::runtime_error("inside");
               }),
               std::runtime_error);
  EXPECT_EQ(count_flops([&] { at::mm(a, a); }), 2.0 * 4 * 4 * 4);
}

}  // namespace
}  // namespace pixelfly::train
