// Compressors: exact counts, ties, global against layer-wise, N:M grouping on linear and
// convolution weights, block magnitude into block layouts, the policy, and bad requests.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "pixelfly/compress/block_magnitude.h"
#include "pixelfly/compress/magnitude.h"
#include "pixelfly/compress/n_m.h"

#include "common/error_message.h"

namespace pixelfly::compress {
namespace {

using pixelfly::testing::error_of;

int64_t kept(const at::Tensor& mask) { return mask.sum().item<int64_t>(); }

// A boolean tensor from 0/1 values.
at::Tensor bools(std::vector<int64_t> values) { return at::tensor(values).to(at::kBool); }


TEST(KeepLargest, KeepsExactlyKWithTiesByIndex) {
  const at::Tensor scores = at::tensor({3.0, 1.0, 2.0, 2.0, 5.0, 2.0});
  EXPECT_TRUE(at::equal(keep_largest(scores, 3), bools({1, 0, 1, 0, 1, 0})));
  EXPECT_TRUE(at::equal(keep_largest(scores, 4), bools({1, 0, 1, 1, 1, 0})));
  EXPECT_EQ(kept(keep_largest(scores, 0)), 0);
  EXPECT_EQ(kept(keep_largest(scores, 6)), 6);
  // Many ties: all-equal scores keep the first k.
  EXPECT_TRUE(at::equal(keep_largest(at::ones({5}), 2), bools({1, 1, 0, 0, 0})));
}

TEST(KeepLargest, MatchesASortOnRandomScores) {
  torch::manual_seed(0);
  const at::Tensor scores = at::randn({10007});
  for (int64_t k : {1, 17, 5000, 10006}) {
    const at::Tensor keep = keep_largest(scores, k);
    EXPECT_EQ(kept(keep), k);
    const double smallest_kept = scores.masked_select(keep).min().item<double>();
    const double largest_dropped = scores.masked_select(~keep).max().item<double>();
    EXPECT_GE(smallest_kept, largest_dropped);
  }
}

TEST(KeepLargest, CudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(2);
  const at::Tensor scores = at::randn({1 << 20}).abs().round_(3);  // ties from rounding
  for (int64_t k : {1, 1 << 19, (1 << 20) - 1}) {
    EXPECT_TRUE(at::equal(keep_largest(scores.cuda(), k).cpu(), keep_largest(scores, k))) << "k = " << k;
  }
}

TEST(MagnitudeCompressors, GlobalKeepsCeilCountAcrossWeightsUniformPerWeight) {
  torch::manual_seed(1);
  // One large-magnitude and one small-magnitude layer: global pruning takes more from the small.
  const std::vector<NamedWeight> weights = {{"big", at::randn({10, 10}) * 10}, {"small", at::randn({10, 10}) * 0.1}};
  const MaskMap global = GlobalMagnitude(0.7).masks(weights);
  EXPECT_EQ(kept(global.at("big")) + kept(global.at("small")), 60);  // ceil(200 * 0.3)
  EXPECT_GT(kept(global.at("big")), kept(global.at("small")));
  EXPECT_NEAR(sparsity_of(global), 0.7, 1e-12);
  const MaskMap uniform = UniformMagnitude(0.7).masks(weights);
  EXPECT_EQ(kept(uniform.at("big")), 30);
  EXPECT_EQ(kept(uniform.at("small")), 30);
  // Kept weights are the largest ones of each layer.
  const at::Tensor w = weights[1].weight.abs();
  EXPECT_GE(w.masked_select(uniform.at("small")).min().item<float>(), w.masked_select(~uniform.at("small")).max().item<float>());
  // k = ceil(n (1 - s)): 7 weights at 0.5 keep 4.
  EXPECT_EQ(kept(UniformMagnitude(0.5).masks({{"w", at::randn({7, 1})}}).at("w")), 4);
  EXPECT_EQ(kept(GlobalMagnitude(0.0).masks(weights).at("small")), 100);
}

TEST(NMCompressor, KeepsNOfEveryMConsecutiveInputWeights) {
  torch::manual_seed(2);
  const at::Tensor linear = at::randn({6, 16});
  const at::Tensor mask = NMCompressor(2, 4).masks({{"fc", linear}}).at("fc");
  ASSERT_EQ(mask.sizes(), linear.sizes());
  const at::Tensor groups = mask.view({6, 4, 4});
  EXPECT_TRUE(at::equal(groups.sum(2), at::full({6, 4}, 2, at::kLong)));
  // The kept pair is the two largest of each group.
  const at::Tensor mags = linear.abs().view({6, 4, 4});
  EXPECT_TRUE(at::equal((mags * groups).amax(2) >= (mags * ~groups).amax(2), at::ones({6, 4}, at::kBool)));
}

TEST(NMCompressor, GroupsConvolutionsAlongInputChannels) {
  torch::manual_seed(3);
  const at::Tensor conv = at::randn({3, 8, 3, 3});  // (out, in, kh, kw)
  const at::Tensor mask = NMCompressor(2, 4).masks({{"conv", conv}}).at("conv");
  ASSERT_EQ(mask.sizes(), conv.sizes());
  // For every (out, kh, kw), each run of 4 input channels keeps 2.
  const at::Tensor by_input = mask.permute({0, 2, 3, 1}).reshape({3, 3, 3, 2, 4});
  EXPECT_TRUE(at::equal(by_input.sum(-1), at::full({3, 3, 3, 2}, 2, at::kLong)));
  // 4:8 keeps half too, in groups of 8.
  const at::Tensor m48 = NMCompressor(4, 8).masks({{"conv", conv}}).at("conv");
  EXPECT_TRUE(at::equal(m48.permute({0, 2, 3, 1}).sum(-1), at::full({3, 3, 3}, 4, at::kLong)));
  // Ties inside a group keep the lowest input channels.
  const at::Tensor flat = NMCompressor(2, 4).masks({{"w", at::ones({1, 4})}}).at("w");
  EXPECT_TRUE(at::equal(flat, bools({1, 1, 0, 0}).view({1, 4})));
}

TEST(BlockMagnitude, KeepsTheLargestTilesAndGivesTheirLayout) {
  at::Tensor w = at::full({64, 96}, 0.01);
  // Make tiles (0, 2), (1, 0) and (3, 5) of 16 x 16 clearly the largest.
  w.narrow(0, 0, 16).narrow(1, 32, 16).fill_(3.0);
  w.narrow(0, 16, 16).narrow(1, 0, 16).fill_(-2.0);
  w.narrow(0, 48, 16).narrow(1, 80, 16).fill_(1.0);
  const BlockMagnitude compressor(0.875, 16);  // 24 tiles -> keep 3
  const std::vector<NamedWeight> weights = {{"fc", w}};
  const BlockLayout layout = compressor.layouts(weights).at("fc");
  EXPECT_EQ(layout.nnz(), 3);
  EXPECT_TRUE(layout.contains(0, 2));
  EXPECT_TRUE(layout.contains(1, 0));
  EXPECT_TRUE(layout.contains(3, 5));
  const at::Tensor mask = compressor.masks(weights).at("fc");
  EXPECT_EQ(kept(mask), 3 * 256);
  EXPECT_TRUE(mask.narrow(0, 48, 16).narrow(1, 80, 16).all().item<bool>());
}

TEST(Compressors, RejectBadRequestsClearly) {
  EXPECT_NE(error_of([] { GlobalMagnitude(1.0); }).find("sparsity must be in [0, 1), got 1"), std::string::npos);
  EXPECT_NE(error_of([] { UniformMagnitude(-0.1); }).find("sparsity must be in [0, 1)"), std::string::npos);
  EXPECT_NE(error_of([] { NMCompressor(5, 4); }).find("N:M pruning needs 1 <= N <= M, got 5:4"), std::string::npos);
  EXPECT_NE(error_of([] { NMCompressor(2, 4).masks({{"fc", at::randn({4, 6})}}); })
                .find("weight 'fc' has 6 input channels, not divisible by M = 4"),
            std::string::npos);
  EXPECT_NE(error_of([] { BlockMagnitude(0.5, 32).masks({{"fc", at::randn({64, 48})}}); })
                .find("block 32 does not divide weight 'fc' of shape [64, 48]"),
            std::string::npos);
  EXPECT_NE(error_of([] { BlockMagnitude(0.5, 4).masks({{"conv", at::randn({8, 8, 3, 3})}}); }).find("must be 2-D"),
            std::string::npos);
}

struct TinyNet : torch::nn::Module {
  TinyNet() {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3)));
    bn = register_module("bn", torch::nn::BatchNorm2d(8));
    fc = register_module("fc", torch::nn::Linear(8, 4));
    head = register_module("head", torch::nn::Linear(4, 2));
  }
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  torch::nn::Linear fc{nullptr}, head{nullptr};
};

TEST(CompressionPolicy, SelectsWeightsOfTwoOrMoreDimensions) {
  TinyNet net;
  auto names = [](const std::vector<NamedWeight>& ws) {
    std::vector<std::string> out;
    for (const NamedWeight& w : ws) out.push_back(w.name);
    return out;
  };
  EXPECT_EQ(names(compressible_weights(net, {})), (std::vector<std::string>{"conv.weight", "fc.weight", "head.weight"}));
  CompressionPolicy ends;
  ends.keep_first_dense = ends.keep_last_dense = true;
  EXPECT_EQ(names(compressible_weights(net, ends)), (std::vector<std::string>{"fc.weight"}));
  CompressionPolicy named;
  named.keep_dense = {"fc.weight"};
  EXPECT_EQ(names(compressible_weights(net, named)), (std::vector<std::string>{"conv.weight", "head.weight"}));
  named.keep_dense = {"fc.bias"};
  EXPECT_NE(error_of([&] { compressible_weights(net, named); }).find("keep_dense names 'fc.bias'"), std::string::npos);
  // Applying masks zeroes exactly the dropped weights.
  const auto weights = compressible_weights(net, {});
  const MaskMap masks = GlobalMagnitude(0.5).masks(weights);
  apply_masks(weights, masks);
  int64_t zeros = 0, total = 0;
  for (const NamedWeight& w : weights) {
    zeros += (w.weight == 0).sum().item<int64_t>();
    total += w.weight.numel();
  }
  EXPECT_EQ(zeros, total - (total + 1) / 2);
}

}  // namespace
}  // namespace pixelfly::compress
