// Synthetic data: deterministic under the seed, the promised shapes, dtypes and ranges, and
// learnable (images classified by the class means of a set drawn with another seed; tokens
// mostly following their chain).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "pixelfly/data/synthetic.h"

namespace pixelfly::data {
namespace {

TEST(SyntheticImages, AreDeterministicBalancedAndShaped) {
  const ImageDataset a = synthetic_images(100, 3, 8, 10, 1), b = synthetic_images(100, 3, 8, 10, 1);
  EXPECT_EQ(a.images.sizes(), at::IntArrayRef({100, 3, 8, 8}));
  EXPECT_EQ(a.images.scalar_type(), at::kByte);
  EXPECT_EQ(a.labels.scalar_type(), at::kLong);
  EXPECT_EQ(a.classes, 10);
  EXPECT_TRUE(at::equal(a.images, b.images));
  EXPECT_TRUE(at::equal(a.labels, b.labels));
  EXPECT_TRUE(at::equal(at::bincount(a.labels), at::full({10}, 10, at::kLong)));
  const ImageDataset other = synthetic_images(100, 3, 8, 10, 2);
  EXPECT_FALSE(at::equal(a.images, other.images));
  EXPECT_FALSE(at::equal(a.labels, other.labels));
  EXPECT_THROW(synthetic_images(0, 3, 8, 10, 1), c10::Error);
  EXPECT_THROW(synthetic_images(10, 3, 8, 1, 1), c10::Error);
}

TEST(SyntheticImages, ClassesCarryOverBetweenSeedsSoTheyCanBeLearnt) {
  const int64_t classes = 5;
  const ImageDataset train = synthetic_images(500, 1, 6, classes, 10), test = synthetic_images(200, 1, 6, classes, 11);
  const at::Tensor x = train.images.to(at::kFloat).flatten(1);
  std::vector<at::Tensor> means;
  for (int64_t c = 0; c < classes; ++c) means.push_back(x.index_select(0, at::nonzero(train.labels == c).view(-1)).mean(0));
  const at::Tensor distances = at::cdist(test.images.to(at::kFloat).flatten(1), at::stack(means));
  const double accuracy = (distances.argmin(1) == test.labels).to(at::kDouble).mean().item<double>();
  EXPECT_GT(accuracy, 0.95);
  // Yet they are noisy: no two images of a class are the same.
  const at::Tensor class0 = x.index_select(0, at::nonzero(train.labels == 0).view(-1));
  EXPECT_FALSE(at::equal(class0[0], class0[1]));
}

TEST(SyntheticTokens, AreDeterministicInRangeAndMostlyFollowTheChain) {
  const at::Tensor a = synthetic_tokens(20000, 16, 3);
  EXPECT_EQ(a.scalar_type(), at::kByte);
  EXPECT_EQ(a.sizes(), at::IntArrayRef({20000}));
  EXPECT_TRUE(at::equal(a, synthetic_tokens(20000, 16, 3)));
  EXPECT_FALSE(at::equal(a, synthetic_tokens(20000, 16, 4)));
  EXPECT_LT(a.max().item<int>(), 16);
  // Bigram counts: each token's 4 most frequent successors take about 90 % + 4/16 * 10 %.
  const at::Tensor t = a.to(at::kLong);
  const at::Tensor pairs = t.narrow(0, 0, 19999) * 16 + t.narrow(0, 1, 19999);
  const at::Tensor counts = at::bincount(pairs, {}, 256).view({16, 16}).to(at::kDouble);
  const double top4 = std::get<0>(counts.topk(4, 1)).sum().item<double>() / counts.sum().item<double>();
  EXPECT_GT(top4, 0.85);
  const at::Tensor wide = synthetic_tokens(1000, 50257, 3);
  EXPECT_EQ(wide.scalar_type(), at::kLong);
  EXPECT_GE(wide.min().item<int64_t>(), 0);
  EXPECT_LT(wide.max().item<int64_t>(), 50257);
  EXPECT_THROW(synthetic_tokens(10, 1, 0), c10::Error);
}

}  // namespace
}  // namespace pixelfly::data
