// ResNets: exact parameter counts of ResNet-20/18/50 (the references' sizes), output shapes for
// both stems, projection shortcuts exactly where the shape changes, a few training steps
// lowering the loss, and errors that name the bad value.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error_message.h"
#include "common/model_testing.h"
#include "pixelfly/models/model_zoo.h"
#include "pixelfly/models/resnet.h"

namespace pixelfly::models {
namespace {

using pixelfly::testing::error_of;
using pixelfly::testing::first_and_last_loss;

TEST(ResNet, Resnet20SizeShapesAndShortcuts) {
  torch::manual_seed(0);
  ResNet model(resnet_preset("resnet20"));
  // stem 464 + stage 1: 3 x 4,672 + stage 2: 14,528 + 2 x 18,560 + stage 3: 57,728 + 2 x 73,984
  // + head 650.
  EXPECT_EQ(parameter_count(*model), 272474);
  ASSERT_EQ(model->blocks.size(), 9u);
  for (size_t i = 0; i < 9; ++i) {
    EXPECT_EQ(static_cast<bool>(model->blocks[i]->shortcut), i == 3 || i == 6) << "block " << i;
  }
  EXPECT_TRUE(model->named_parameters().contains("blocks.3.shortcut.0.weight"));
  EXPECT_EQ(model->forward(at::randn({2, 3, 32, 32})).sizes(), at::IntArrayRef({2, 10}));
}

TEST(ResNet, ImagenetSizes) {
  // torchvision's resnet18 and resnet50 with 1000 classes.
  ResNet r18(resnet_preset("resnet18"));
  EXPECT_EQ(parameter_count(*r18), 11689512);
  ResNet r50(resnet_preset("resnet50"));
  EXPECT_EQ(parameter_count(*r50), 25557032);
  EXPECT_EQ(r50->blocks[0]->out_channels(), 256);
  EXPECT_TRUE(static_cast<bool>(r50->blocks[0]->shortcut));  // 64 -> 256 channels
  EXPECT_FALSE(static_cast<bool>(r50->blocks[1]->shortcut));
  r18->eval();
  EXPECT_EQ(r18->forward(at::randn({1, 3, 64, 64})).sizes(), at::IntArrayRef({1, 1000}));
}

TEST(ResNet, SmallInputStemOnResnet18) {
  torch::manual_seed(0);
  ResNetOptions o = resnet_preset("resnet18");
  o.small_input_stem = true;
  o.in_channels = 1;
  o.classes = 10;
  ResNet model(o);
  EXPECT_EQ(model->stem_conv->options.kernel_size()->at(0), 3);
  EXPECT_EQ(model->stem_conv->options.stride()->at(0), 1);
  EXPECT_EQ(model->forward(at::randn({2, 1, 28, 28})).sizes(), at::IntArrayRef({2, 10}));
}

TEST(ResNet, TrainingLowersTheLoss) {
  torch::manual_seed(1);
  ResNetOptions o = resnet_preset("resnet20");
  o.stage_blocks = {1, 1, 1};
  ResNet model(o);
  const at::Tensor images = at::randn({8, 3, 16, 16}), labels = at::randint(0, 10, {8}, at::kLong);
  torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  const auto [first, last] =
      first_and_last_loss(opt, [&] { return torch::nn::functional::cross_entropy(model->forward(images), labels); });
  EXPECT_LT(last, 0.7 * first);
}

TEST(ResNet, RejectsBadOptionsAndInputs) {
  ResNetOptions o = resnet_preset("resnet20");
  o.stage_channels = {16, 32};
  EXPECT_NE(error_of([&] { ResNet{o}; }).find("stage_blocks and stage_channels"), std::string::npos);
  o = resnet_preset("resnet20");
  o.stage_blocks[1] = 0;
  EXPECT_NE(error_of([&] { ResNet{o}; }).find("stage 1 needs blocks and channels >= 1, got 0"), std::string::npos);
  ResNet model(resnet_preset("resnet20"));
  EXPECT_NE(error_of([&] { model->forward(at::randn({2, 1, 32, 32})); }).find("images must be (batch, 3, H, W)"),
            std::string::npos);
  EXPECT_NE(error_of([] { resnet_preset("resnet152"); }).find("unknown ResNet preset 'resnet152'"),
            std::string::npos);
}

}  // namespace
}  // namespace pixelfly::models
