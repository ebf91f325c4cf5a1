// PixelflyLinear: equals its dense equivalent in every mixing mode, gradients reach every
// parameter and match the dense path, initialisation as specified, parameter savings.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

#include "pixelfly/nn/pixelfly_linear.h"
#include "pixelfly/pattern/random_layout.h"

namespace pixelfly::nn {
namespace {

double relative_error(const at::Tensor& out, const at::Tensor& ref) {
  return (out - ref).norm().item<double>() / ref.norm().item<double>();
}

PixelflyLinear make_layer(Mixing mixing, int64_t in = 96, int64_t out = 160) {
  PixelflyLinear layer(PixelflyLinearOptions(in, out).butterfly_size(8).factors(2).block(8).rank(6).mixing(mixing)
                           .fixed_gamma(0.3));
  layer->to(at::kDouble);
  return layer;
}

// y from the dense matrices, in float64: w x B^T + (1 - w) x (U V^T)^T + bias.
at::Tensor dense_forward(PixelflyLinearImpl& layer, const at::Tensor& x) {
  const at::Tensor w = layer.sparse_weight(x);
  return w * x.matmul(layer.dense_sparse_part().t()) + (1 - w) * x.matmul(layer.dense_low_rank_part().t()) +
         layer.bias;
}

TEST(PixelflyLinear, EqualsDenseEquivalentInScalarAndFixedModes) {
  for (Mixing mixing : {Mixing::Scalar, Mixing::Fixed}) {
    torch::manual_seed(1);
    PixelflyLinear layer = make_layer(mixing);
    if (mixing == Mixing::Scalar) {
      torch::NoGradGuard no_grad;
      layer->mix_logit.fill_(0.7);  // away from the initial 0.5 so the two parts are told apart
    }
    const at::Tensor x = at::randn({2, 7, 96}, at::kDouble);
    const at::Tensor y = layer->forward(x);
    ASSERT_EQ(y.sizes(), at::IntArrayRef({2, 7, 160}));
    EXPECT_LE(relative_error(y, x.matmul(layer->dense_equivalent().t()) + layer->bias), 1e-12) << to_string(mixing);
    EXPECT_LE(relative_error(y, dense_forward(*layer, x)), 1e-12);
    const double gamma = mixing == Mixing::Scalar ? 1.0 / (1.0 + std::exp(-0.7)) : 0.3;
    const at::Tensor expected = gamma * layer->dense_sparse_part() + (1 - gamma) * layer->dense_low_rank_part();
    EXPECT_LE(relative_error(layer->dense_equivalent(), expected), 1e-12);
  }
}

TEST(PixelflyLinear, GateModeMixesPerTokenAsTheReleasedCode) {
  torch::manual_seed(2);
  PixelflyLinear layer = make_layer(Mixing::Gate);
  const at::Tensor x = at::randn({11, 96}, at::kDouble);
  const at::Tensor g = at::sigmoid(x.matmul(layer->gate_weight) + layer->gate_bias).unsqueeze(-1);
  const at::Tensor expected = (1 - g) * x.matmul(layer->dense_sparse_part().t()) +
                              g * x.matmul(layer->dense_low_rank_part().t()) + layer->bias;
  EXPECT_LE(relative_error(layer->forward(x), expected), 1e-12);
  // The gate differs between tokens.
  EXPECT_GT((g.max() - g.min()).item<double>(), 1e-3);
  try {
    layer->dense_equivalent();
    ADD_FAILURE() << "dense_equivalent must refuse gate mode";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("depends on the input"), std::string::npos);
  }
}

TEST(PixelflyLinear, GradientsReachEveryParameterAndMatchTheDensePath) {
  for (Mixing mixing : {Mixing::Scalar, Mixing::Gate, Mixing::Fixed}) {
    torch::manual_seed(3);
    PixelflyLinear layer = make_layer(mixing);
    const at::Tensor x = at::randn({9, 96}, at::kDouble).requires_grad_();
    const at::Tensor target = at::randn({9, 160}, at::kDouble);
    (layer->forward(x) - target).pow(2).sum().backward();
    std::map<std::string, at::Tensor> fast;
    for (const auto& p : layer->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << p.key() << " got no gradient (" << to_string(mixing) << ")";
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
      fast[p.key()] = p.value().grad().clone();
    }
    const at::Tensor fast_x = x.grad().clone();
    layer->zero_grad();
    x.mutable_grad().zero_();
    (dense_forward(*layer, x) - target).pow(2).sum().backward();
    for (const auto& p : layer->named_parameters()) {
      EXPECT_LE(relative_error(fast[p.key()], p.value().grad()), 1e-10) << p.key() << " " << to_string(mixing);
    }
    EXPECT_LE(relative_error(fast_x, x.grad()), 1e-10);
  }
  // The parameters each mode owns.
  EXPECT_TRUE(make_layer(Mixing::Scalar)->named_parameters().contains("mix_logit"));
  EXPECT_TRUE(make_layer(Mixing::Gate)->named_parameters().contains("gate_weight"));
  std::vector<std::string> fixed = make_layer(Mixing::Fixed)->named_parameters().keys();
  std::sort(fixed.begin(), fixed.end());
  EXPECT_EQ(fixed, (std::vector<std::string>{"bias", "low_rank.u", "low_rank.v", "sparse.blocks"}));
}

TEST(PixelflyLinear, StoresOnlyNonzeroBlocksAndCountsParameters) {
  PixelflyLinear layer(PixelflyLinearOptions(768, 3072));  // released settings: n=16, k=2, b=32, r=32
  const BlockLayout& l = layer->sparse->layout()->layout();
  EXPECT_NEAR(l.density(), 0.208, 5e-4);
  EXPECT_EQ(layer->sparse->blocks.sizes(), at::IntArrayRef({l.nnz(), 32, 32}));
  const int64_t expected = l.nnz() * 32 * 32 + 32 * (3072 + 768) + 1 + 3072;
  EXPECT_EQ(layer->parameter_count(), expected);
  EXPECT_EQ(layer->dense_parameter_count(), 3072 * 768 + 3072);
  EXPECT_LT(layer->parameter_count(), 0.27 * layer->dense_parameter_count());
}

TEST(PixelflyLinear, SvdInitIsABalancedTruncationOfADenseInit) {
  torch::manual_seed(4);
  PixelflyLinear layer(PixelflyLinearOptions(200, 120).butterfly_size(4).factors(1).block(8).rank(10));
  const at::Tensor u = layer->low_rank->u.detach().to(at::kDouble), v = layer->low_rank->v.detach().to(at::kDouble);
  // U = U_r sqrt(S), V = V_r sqrt(S): U^T U = V^T V = diag(S), decreasing.
  const at::Tensor utu = u.t().matmul(u), vtv = v.t().matmul(v);
  EXPECT_LE(relative_error(utu, vtv), 1e-4);
  const at::Tensor s = utu.diagonal();
  EXPECT_LE((utu - at::diag(s)).abs().max().item<double>(), 1e-4 * s.max().item<double>());
  EXPECT_TRUE((s.slice(0, 0, 9) >= s.slice(0, 1, 10)).all().item<bool>());
  // Singular values of a 120 x 200 uniform(+-1/sqrt(200)) matrix: the largest is about
  // (sqrt(120) + sqrt(200)) / sqrt(3 * 200) = 1.02.
  EXPECT_NEAR(s[0].item<double>(), 1.02, 0.15);
}

TEST(PixelflyLinear, SparseInitScalesEachBlockRowByItsOwnCount) {
  torch::manual_seed(5);
  // Rows with 1, 2 and 4 nonzero blocks of 4 (block 16, in = 64).
  const std::vector<uint8_t> mask = {1, 0, 0, 0,  1, 1, 0, 0,  1, 1, 1, 1};
  auto layout = std::make_shared<const BlockLayout>(BlockLayout::from_block_mask(48, 64, 16, mask));
  BlockSparseLinear layer(BlockSparseLinearOptions(64, 48).layout(layout));
  const BlockLayout& l = layer->layout()->layout();
  for (int64_t r = 0; r < 3; ++r) {
    const double bound = std::sqrt(4.0 / l.row_count(r)) / std::sqrt(64.0);
    const at::Tensor row = layer->blocks.narrow(0, l.row_ptr()[r], l.row_count(r)).abs();
    EXPECT_LE(row.max().item<double>(), bound);
    EXPECT_GE(row.max().item<double>(), 0.97 * bound);  // 256+ uniform draws reach the bound
  }
}

TEST(PixelflyLinear, RejectsBadOptionsNamingThem) {
  auto error_of = [](const PixelflyLinearOptions& o) {
    try {
      PixelflyLinear layer(o);
    } catch (const c10::Error& e) {
      return std::string(e.what_without_backtrace());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of(PixelflyLinearOptions(64, 64).rank(0)).find("rank must be >= 1"), std::string::npos);
  EXPECT_NE(error_of(PixelflyLinearOptions(64, 64).rank(65)).find("rank must be in [1, min(out_features, in_features)]"),
            std::string::npos);
  EXPECT_NE(error_of(PixelflyLinearOptions(64, 64).mixing(Mixing::Fixed).fixed_gamma(1.5)).find("fixed_gamma"),
            std::string::npos);
  EXPECT_NE(error_of(PixelflyLinearOptions(64, 64).butterfly_size(6).block(8))
                .find("BlockSparseLinear(64 -> 64): butterfly_size must be a power of two >= 2, got 6"),
            std::string::npos);
  EXPECT_NE(error_of(PixelflyLinearOptions(96, 96).block(8).rank(4)
                         .layout(std::make_shared<const BlockLayout>(random_layout(64, 96, 8, 0.5, 1))))
                .find("layout is 64 x 96"),
            std::string::npos);
  EXPECT_THROW(parse_mixing("soft"), c10::Error);
}

TEST(PixelflyLinear, DefaultLayerIsFloat32AndRunsOnFloat32Inputs) {
  for (LowRankInit init : {LowRankInit::Svd, LowRankInit::Kaiming}) {
    PixelflyLinear layer(PixelflyLinearOptions(96, 64).block(8).rank(4).low_rank_init(init));
    for (const auto& p : layer->named_parameters()) EXPECT_EQ(p.value().scalar_type(), at::kFloat) << p.key();
    const at::Tensor x = at::randn({3, 96}).requires_grad_();
    const at::Tensor y = layer->forward(x);
    EXPECT_EQ(y.scalar_type(), at::kFloat);
    y.sum().backward();
    EXPECT_TRUE(x.grad().defined());
  }
}

TEST(PixelflyLinear, RankFractionOfTheSmallerSide) {
  PixelflyLinear layer(PixelflyLinearOptions(256, 128).block(8).rank_fraction(0.125));
  EXPECT_EQ(layer->rank(), 16);
}

}  // namespace
}  // namespace pixelfly::nn
