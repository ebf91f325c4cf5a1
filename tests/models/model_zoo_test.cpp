// Model zoo: every preset has a task, the small presets build and run through the type-erased
// forward (dense and Pixelfly), overrides reach the model, and bad configurations give errors
// that name the preset or the key.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

#include "common/error_message.h"
#include "pixelfly/models/model_zoo.h"
#include "pixelfly/models/resnet.h"

namespace pixelfly::models {
namespace {

using pixelfly::testing::error_of;

ModelConfig config(const std::string& preset, Sparsity sparsity = Sparsity::Dense) {
  ModelConfig c;
  c.preset = preset;
  c.sparsity = sparsity;
  return c;
}

TEST(ModelZoo, PresetsAndTasks) {
  const std::vector<std::string> expected = {"mixer-s16", "mixer-b16", "mixer-small28", "vit-s16", "vit-b16",
                                             "vit-small28", "resnet20", "resnet18", "resnet50", "gpt2-small",
                                             "gpt2-medium", "gpt2-tiny"};
  EXPECT_EQ(model_preset_names(), expected);
  for (const std::string& name : expected) {
    EXPECT_EQ(preset_task(name), name.rfind("gpt2", 0) == 0 ? Task::LanguageModelling : Task::ImageClassification)
        << name;
  }
  const std::string message = error_of([] { preset_task("bert"); });
  EXPECT_NE(message.find("unknown model preset 'bert'; known: mixer-s16, "), std::string::npos) << message;
  EXPECT_NE(message.find("gpt2-tiny"), std::string::npos) << message;
  EXPECT_NE(error_of([] { build_model(config("bert")); }).find("unknown model preset 'bert'"), std::string::npos);
}

TEST(ModelZoo, SmallImagePresetsBuildAndRun) {
  torch::manual_seed(0);
  for (const char* preset : {"mixer-small28", "vit-small28"}) {
    const Model dense = build_model(config(preset));
    const Model sparse = build_model(config(preset, Sparsity::Pixelfly));
    EXPECT_EQ(dense.task, Task::ImageClassification);
    EXPECT_TRUE(dense.plans.empty()) << preset;
    EXPECT_EQ(sparse.plans.size(), 8u) << preset;  // fc1 and fc2 of 4 blocks
    for (const LayerPlan& p : sparse.plans) {
      EXPECT_TRUE(p.block == 8 || p.block == 16 || p.block == 32) << preset << " " << p.layer.name;
    }
    EXPECT_LT(parameter_count(*sparse.module), parameter_count(*dense.module)) << preset;
    const at::Tensor images = at::randn({2, 1, 28, 28});
    EXPECT_EQ(dense.forward(images).sizes(), at::IntArrayRef({2, 10})) << preset;
    EXPECT_EQ(sparse.forward(images).sizes(), at::IntArrayRef({2, 10})) << preset;
  }
}

TEST(ModelZoo, GptTinyBuildsRunsAndTrainsThroughTheInterface) {
  torch::manual_seed(0);
  ModelConfig c = config("gpt2-tiny", Sparsity::Pixelfly);
  c.sparsify_attention = true;
  c.attention_density = 0.5;
  c.context = 64;
  const Model model = build_model(c);
  EXPECT_EQ(model.task, Task::LanguageModelling);
  ASSERT_EQ(model.plans.size(), 16u);  // qkv, proj, fc1, fc2 of 4 blocks
  EXPECT_DOUBLE_EQ(model.plans[0].target_density, 0.5);
  EXPECT_DOUBLE_EQ(model.plans[2].target_density, 0.25);
  EXPECT_NE(error_of([&] { model.forward(at::zeros({1, 65}, at::kLong)); }).find("context = 64"), std::string::npos);

  const at::Tensor tokens = at::randint(0, 256, {2, 17}, at::kLong);
  torch::optim::AdamW opt(model.module->parameters(), torch::optim::AdamWOptions(3e-3));
  double first = 0, last = 0;
  for (int step = 0; step < 8; ++step) {
    opt.zero_grad();
    const at::Tensor logits = model.forward(tokens.narrow(1, 0, 16));
    EXPECT_EQ(logits.sizes(), at::IntArrayRef({2, 16, 256}));
    const at::Tensor loss = at::cross_entropy_loss(logits.flatten(0, 1), tokens.narrow(1, 1, 16).flatten());
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, 0.8 * first);
}

TEST(ModelZoo, OverridesReachTheModel) {
  torch::manual_seed(0);
  ModelConfig c = config("vit-small28");
  c.image_size = 32;
  c.in_channels = 3;
  c.classes = 5;
  EXPECT_EQ(build_model(c).forward(at::randn({2, 3, 32, 32})).sizes(), at::IntArrayRef({2, 5}));

  c = config("gpt2-tiny");
  c.vocab_size = 100;
  c.context = 16;
  const Model gpt = build_model(c);
  EXPECT_EQ(gpt.forward(at::zeros({1, 16}, at::kLong)).sizes(), at::IntArrayRef({1, 16, 100}));

  c = config("resnet18");
  c.image_size = 32;
  c.classes = 10;
  const Model resnet = build_model(c);
  EXPECT_TRUE(std::dynamic_pointer_cast<ResNetImpl>(resnet.module)->options().small_input_stem);
  resnet.module->eval();
  EXPECT_EQ(resnet.forward(at::randn({1, 3, 32, 32})).sizes(), at::IntArrayRef({1, 10}));

  c = config("mixer-small28");
  c.block_sizes = {16};
  c.sparsity = Sparsity::Pixelfly;
  for (const LayerPlan& p : build_model(c).plans) EXPECT_EQ(p.block, 16) << p.layer.name;
}

TEST(ModelZoo, SparsifiableLayersAreTheLayersABuiltModelPlans) {
  torch::manual_seed(0);
  for (const std::string preset : {"mixer-small28", "vit-small28", "gpt2-tiny"}) {
    ModelConfig c = config(preset, Sparsity::Pixelfly);
    c.sparsify_attention = preset != "mixer-small28";
    const Model model = build_model(c);
    const SparsifiableLayers listed = preset_sparsifiable_layers(preset);
    ASSERT_EQ(listed.layers.size(), model.plans.size()) << preset;
    for (size_t i = 0; i < listed.layers.size(); ++i) {
      const LayerShape &a = listed.layers[i], &b = model.plans[i].layer;
      EXPECT_EQ(a.name, b.name) << preset;
      EXPECT_EQ(a.type, b.type) << preset << " " << a.name;
      EXPECT_EQ(a.out_features, b.out_features) << preset << " " << a.name;
      EXPECT_EQ(a.in_features, b.in_features) << preset << " " << a.name;
      EXPECT_NE(std::find(listed.block_sizes.begin(), listed.block_sizes.end(), model.plans[i].block),
                listed.block_sizes.end())
          << preset << " " << a.name;
    }
  }
  const SparsifiableLayers medium = preset_sparsifiable_layers("gpt2-medium");
  ASSERT_EQ(medium.layers.size(), 96u);  // qkv, proj, fc1, fc2 of 24 blocks
  EXPECT_EQ(medium.layers[94].name, "blocks.23.mlp.fc1");
  EXPECT_EQ(medium.layers[94].out_features, 4096);
  EXPECT_EQ(medium.layers[94].in_features, 1024);
  EXPECT_NE(error_of([] { preset_sparsifiable_layers("resnet20"); }).find("ResNet 'resnet20' has no Pixelfly layers"),
            std::string::npos);
  EXPECT_NE(error_of([] { preset_sparsifiable_layers("bert"); }).find("unknown model preset 'bert'"),
            std::string::npos);
}

TEST(ModelZoo, RejectsBadConfigurations) {
  EXPECT_NE(error_of([] { build_model(config("resnet20", Sparsity::Pixelfly)); })
                .find("Pixelfly sparsity is not defined for ResNet 'resnet20'"),
            std::string::npos);
  ModelConfig c = config("vit-small28");
  c.vocab_size = 300;
  EXPECT_NE(error_of([&] { build_model(c); }).find("vocab_size = 300 does not apply to image classifier 'vit-small28'"),
            std::string::npos);
  c = config("gpt2-tiny");
  c.classes = 10;
  EXPECT_NE(error_of([&] { build_model(c); }).find("classes = 10 does not apply to language model 'gpt2-tiny'"),
            std::string::npos);
  c = config("mixer-small28");
  c.image_size = -28;
  EXPECT_NE(error_of([&] { build_model(c); }).find("image_size must be >= 0"), std::string::npos);
  c = config("mixer-small28");
  c.sparsify_attention = true;
  EXPECT_NE(error_of([&] { build_model(c); }).find("sparsify_attention applies to ViT and GPT-2, not to 'mixer-small28'"),
            std::string::npos);
  c = config("vit-small28", Sparsity::Pixelfly);
  c.mlp_density = 1.5;
  EXPECT_NE(error_of([&] { build_model(c); }).find("sparsify:"), std::string::npos);
  c.mlp_density = 0.25;
  c.low_rank_share = 0.0;
  EXPECT_NE(error_of([&] { build_model(c); }).find("low_rank_share > 0"), std::string::npos);
  c = config("vit-small28");
  c.image_size = 30;
  EXPECT_NE(error_of([&] { build_model(c); }).find("patch_size 4 must divide image_size 30"), std::string::npos);
}

}  // namespace
}  // namespace pixelfly::models
