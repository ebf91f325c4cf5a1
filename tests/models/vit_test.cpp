// ViT: the attention block against a hand-written softmax attention, output shapes, training
// steps lowering the loss, which layers Pixelfly replaces (MLP only, or with attention at its own
// density), the paper's ViT-S size, and errors that name the bad value.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "common/error_message.h"
#include "common/model_testing.h"
#include "pixelfly/models/model_zoo.h"
#include "pixelfly/models/vit.h"
#include "pixelfly/nn/pixelfly_linear.h"

namespace pixelfly::models {
namespace {

using pixelfly::testing::error_of;
using pixelfly::testing::first_and_last_loss;
using pixelfly::testing::has;

VitOptions small(Sparsity sparsity) {
  VitOptions o;
  o.dim = 64;
  o.depth = 2;
  o.heads = 4;
  o.mlp_dim = 256;
  o.block_sizes = {8, 16};
  o.sparsity = sparsity;
  return o;
}

void expect_training_lowers_the_loss(Vit& model) {
  const at::Tensor images = at::randn({8, 1, 28, 28}), labels = at::randint(0, 10, {8}, at::kLong);
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-3));
  const auto [first, last] =
      first_and_last_loss(opt, [&] { return torch::nn::functional::cross_entropy(model->forward(images), labels); });
  EXPECT_LT(last, 0.7 * first);
}

// softmax(q k^T / sqrt(d)) v per head, in float64, from the block's own qkv and proj weights.
at::Tensor reference_attention(SelfAttentionImpl& attn, const at::Tensor& x, int64_t heads, bool causal) {
  const auto& qkv = *attn.qkv.get<torch::nn::Linear>();
  const auto& proj = *attn.proj.get<torch::nn::Linear>();
  const at::Tensor xd = x.to(at::kDouble);
  const int64_t batch = x.size(0), tokens = x.size(1), dim = x.size(2), head_dim = dim / heads;
  at::Tensor all = at::linear(xd, qkv.weight.to(at::kDouble),
                              qkv.bias.defined() ? qkv.bias.to(at::kDouble) : at::Tensor());
  at::Tensor out = at::zeros({batch, tokens, dim}, at::kDouble);
  for (int64_t h = 0; h < heads; ++h) {
    const at::Tensor q = all.narrow(2, h * head_dim, head_dim), k = all.narrow(2, dim + h * head_dim, head_dim),
                     v = all.narrow(2, 2 * dim + h * head_dim, head_dim);
    at::Tensor scores = at::matmul(q, k.transpose(1, 2)) / std::sqrt(static_cast<double>(head_dim));
    if (causal) scores = scores.masked_fill(at::ones({tokens, tokens}, at::kBool).triu(1), -INFINITY);
    out.narrow(2, h * head_dim, head_dim).copy_(at::matmul(at::softmax(scores, -1), v));
  }
  return at::linear(out, proj.weight.to(at::kDouble), proj.bias.to(at::kDouble));
}

TEST(Vit, AttentionMatchesReference) {
  torch::manual_seed(0);
  for (bool qkv_bias : {true, false}) {
    TransformerBlockOptions o;
    o.dim = 32;
    o.heads = 4;
    o.qkv_bias = qkv_bias;
    SelfAttention attn(o);
    const at::Tensor x = at::randn({2, 7, 32});
    EXPECT_TRUE(at::allclose(attn(x).to(at::kDouble), reference_attention(*attn, x, 4, false), 1e-4, 1e-5))
        << "qkv_bias " << qkv_bias;
  }
}

TEST(Vit, DenseModelShapesAndTraining) {
  torch::manual_seed(0);
  Vit model(small(Sparsity::Dense));
  EXPECT_EQ(model->forward(at::randn({3, 1, 28, 28})).sizes(), at::IntArrayRef({3, 10}));
  EXPECT_TRUE(model->plans().empty());
  EXPECT_EQ(model->pos_embed.sizes(), at::IntArrayRef({1, 1 + 49, 64}));
  const auto names = model->named_parameters().keys();
  for (const char* name : {"patch_embed.weight", "cls_token", "pos_embed", "blocks.1.attn.qkv.weight",
                           "blocks.1.attn.qkv.bias", "blocks.1.mlp.fc2.weight", "norm.weight", "head.weight"}) {
    EXPECT_TRUE(has(names, name)) << name;
  }
  expect_training_lowers_the_loss(model);
}

TEST(Vit, PixelflyReplacesExactlyTheMlpLayers) {
  torch::manual_seed(1);
  Vit dense(small(Sparsity::Dense)), sparse(small(Sparsity::Pixelfly));
  ASSERT_EQ(sparse->plans().size(), 4u);
  const char* expected[] = {"blocks.0.mlp.fc1", "blocks.0.mlp.fc2", "blocks.1.mlp.fc1", "blocks.1.mlp.fc2"};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(sparse->plans()[i].layer.name, expected[i]);
    EXPECT_TRUE(sparse->plans()[i].sparse);
    EXPECT_NEAR(sparse->plans()[i].total_density, 0.25, 0.08) << expected[i];
  }
  const auto names = sparse->named_parameters().keys();
  EXPECT_TRUE(has(names, "blocks.0.mlp.fc1.sparse.blocks"));
  EXPECT_TRUE(has(names, "blocks.1.mlp.fc2.low_rank.u"));
  EXPECT_FALSE(has(names, "blocks.0.mlp.fc1.weight"));
  EXPECT_TRUE(has(names, "blocks.0.attn.qkv.weight"));
  EXPECT_TRUE(has(names, "blocks.1.attn.proj.weight"));
  int pixelfly_layers = 0;
  for (const auto& m : sparse->modules(/*include_self=*/false)) {
    pixelfly_layers += dynamic_cast<nn::PixelflyLinearImpl*>(m.get()) != nullptr;
  }
  EXPECT_EQ(pixelfly_layers, 4);
  EXPECT_LT(parameter_count(*sparse), parameter_count(*dense));
  expect_training_lowers_the_loss(sparse);
}

TEST(Vit, PixelflyAttentionHasItsOwnDensity) {
  torch::manual_seed(2);
  VitOptions o = small(Sparsity::Pixelfly);
  o.sparsify_attention = true;
  o.attention_density = 0.5;
  Vit model(o);
  ASSERT_EQ(model->plans().size(), 8u);
  for (const LayerPlan& p : model->plans()) {
    EXPECT_TRUE(p.sparse) << p.layer.name;
    EXPECT_DOUBLE_EQ(p.target_density, p.layer.type == "attention" ? 0.5 : 0.25) << p.layer.name;
  }
  EXPECT_EQ(model->plans()[0].layer.name, "blocks.0.attn.qkv");
  EXPECT_TRUE(model->blocks[1]->attn->proj.type_info() == typeid(nn::PixelflyLinearImpl));
  const auto names = model->named_parameters().keys();
  EXPECT_TRUE(has(names, "blocks.0.attn.qkv.sparse.blocks"));
  EXPECT_FALSE(has(names, "blocks.0.attn.qkv.weight"));
  EXPECT_EQ(model->forward(at::randn({2, 1, 28, 28})).sizes(), at::IntArrayRef({2, 10}));
}

TEST(Vit, PresetsAndPaperSize) {
  const VitOptions s = vit_preset("vit-s16"), b = vit_preset("vit-b16");
  EXPECT_FALSE(s.qkv_bias);
  EXPECT_TRUE(b.qkv_bias);
  EXPECT_EQ(s.mlp_dim, 3 * s.dim);
  EXPECT_EQ(b.depth, 12);
  // timm's original vit_small_patch16_224: 48,754,408 parameters (768-d, depth 8, MLP x3, no qkv bias).
  Vit vit_s(s);
  EXPECT_EQ(parameter_count(*vit_s), 48754408);
  EXPECT_FALSE(vit_s->named_parameters().contains("blocks.0.attn.qkv.bias"));
  EXPECT_NE(error_of([] { vit_preset("vit-h14"); }).find("unknown ViT preset 'vit-h14'; known: vit-s16"),
            std::string::npos);
}

TEST(Vit, RejectsBadShapes) {
  VitOptions o = small(Sparsity::Dense);
  o.patch_size = 5;
  EXPECT_NE(error_of([&] { Vit{o}; }).find("patch_size 5 must divide image_size 28"), std::string::npos);
  o = small(Sparsity::Dense);
  o.heads = 5;
  EXPECT_NE(error_of([&] { Vit{o}; }).find("heads 5 must divide dim 64"), std::string::npos);
  Vit model(small(Sparsity::Dense));
  EXPECT_NE(error_of([&] { model->forward(at::randn({2, 3, 28, 28})); }).find("images must be (batch, 1, 28, 28)"),
            std::string::npos);
}

}  // namespace
}  // namespace pixelfly::models
