// MLP-Mixer: output shapes, a few gradient steps lowering the loss, and the Pixelfly variant
// replacing exactly the channel-mixing layers with the planner's settings.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

#include "common/model_testing.h"
#include "pixelfly/models/model_zoo.h"
#include "pixelfly/models/mlp_mixer.h"
#include "pixelfly/nn/pixelfly_linear.h"

namespace pixelfly::models {
namespace {

using pixelfly::testing::first_and_last_loss;

MixerOptions small(Sparsity sparsity) {
  MixerOptions o;
  o.dim = 64;
  o.depth = 2;
  o.token_mlp_dim = 32;
  o.channel_mlp_dim = 256;
  o.block_sizes = {8, 16};  // 64-wide layers need small blocks to reach a quarter density
  o.sparsity = sparsity;
  return o;
}

void expect_training_lowers_the_loss(MlpMixer& model) {
  const at::Tensor images = at::randn({8, 1, 28, 28}), labels = at::randint(0, 10, {8}, at::kLong);
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(3e-3));
  const auto [first, last] =
      first_and_last_loss(opt, [&] { return torch::nn::functional::cross_entropy(model->forward(images), labels); });
  EXPECT_LT(last, 0.7 * first);
}

TEST(MlpMixer, DenseModelShapesAndTraining) {
  torch::manual_seed(0);
  MlpMixer model(small(Sparsity::Dense));
  EXPECT_EQ(model->forward(at::randn({3, 1, 28, 28})).sizes(), at::IntArrayRef({3, 10}));
  EXPECT_TRUE(model->plans().empty());
  const auto names = model->named_parameters().keys();
  EXPECT_NE(std::find(names.begin(), names.end(), "blocks.1.channel_fc2.weight"), names.end());
  expect_training_lowers_the_loss(model);
}

TEST(MlpMixer, PixelflyReplacesExactlyTheChannelMixingLayers) {
  torch::manual_seed(1);
  MlpMixer dense(small(Sparsity::Dense)), sparse(small(Sparsity::Pixelfly));
  int pixelfly_layers = 0, dense_linears = 0;
  for (const auto& m : sparse->modules(/*include_self=*/false)) {
    pixelfly_layers += dynamic_cast<nn::PixelflyLinearImpl*>(m.get()) != nullptr;
    dense_linears += dynamic_cast<torch::nn::LinearImpl*>(m.get()) != nullptr;
  }
  EXPECT_EQ(pixelfly_layers, 4);  // fc1 and fc2 of both blocks
  EXPECT_EQ(dense_linears, 2 * 2 + 1);  // token fc1/fc2 per block and the head
  ASSERT_EQ(sparse->plans().size(), 4u);
  for (const LayerPlan& p : sparse->plans()) {
    EXPECT_TRUE(p.sparse);
    EXPECT_NEAR(p.total_density, 0.25, 0.08) << p.layer.name;
  }
  const auto* fc1 = sparse->blocks[0]->channel_fc1.get<nn::PixelflyLinear>().get();
  EXPECT_EQ(fc1->options.butterfly_size(), sparse->plans()[0].butterfly_size);
  EXPECT_EQ(fc1->rank(), sparse->plans()[0].rank);
  EXPECT_LT(parameter_count(*sparse), parameter_count(*dense));
  EXPECT_EQ(sparse->forward(at::randn({2, 1, 28, 28})).sizes(), at::IntArrayRef({2, 10}));
  expect_training_lowers_the_loss(sparse);
}

TEST(MlpMixer, RejectsBadShapes) {
  MixerOptions o = small(Sparsity::Dense);
  o.patch_size = 5;
  EXPECT_THROW(MlpMixer{o}, c10::Error);
  MlpMixer model(small(Sparsity::Dense));
  EXPECT_THROW(model->forward(at::randn({2, 3, 28, 28})), c10::Error);
}

}  // namespace
}  // namespace pixelfly::models
