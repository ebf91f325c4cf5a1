// GPT-2: causal attention against a hand-written masked softmax, causality of the whole model,
// output shapes, the tied head sharing the embedding's storage, training steps lowering the loss
// (dense and Pixelfly), GPT-2 small's exact size, and errors that name the bad input.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "common/error_message.h"
#include "common/model_testing.h"
#include "pixelfly/models/model_zoo.h"
#include "pixelfly/models/gpt2.h"
#include "pixelfly/nn/pixelfly_linear.h"

namespace pixelfly::models {
namespace {

using pixelfly::testing::error_of;
using pixelfly::testing::first_and_last_loss;
using pixelfly::testing::has;

Gpt2Options small(Sparsity sparsity) {
  Gpt2Options o;
  o.vocab_size = 64;
  o.context = 32;
  o.dim = 64;
  o.depth = 2;
  o.heads = 4;
  o.mlp_dim = 256;
  o.block_sizes = {8, 16};
  o.sparsity = sparsity;
  return o;
}

void expect_training_lowers_the_loss(Gpt2& model) {
  const at::Tensor tokens = at::randint(0, model->options().vocab_size, {4, 17}, at::kLong);
  const at::Tensor inputs = tokens.narrow(1, 0, 16), targets = tokens.narrow(1, 1, 16);
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(3e-3));
  const auto [first, last] = first_and_last_loss(opt, [&] {
    const at::Tensor logits = model->forward(inputs);
    return at::cross_entropy_loss(logits.flatten(0, 1), targets.flatten());
  });
  EXPECT_LT(last, 0.8 * first);
}

TEST(Gpt2, CausalAttentionMatchesReference) {
  torch::manual_seed(0);
  TransformerBlockOptions o;
  o.dim = 32;
  o.heads = 4;
  o.causal = true;
  SelfAttention attn(o);
  const at::Tensor x = at::randn({2, 9, 32});
  const auto& qkv = *attn->qkv.get<torch::nn::Linear>();
  const auto& proj = *attn->proj.get<torch::nn::Linear>();
  const at::Tensor all = at::linear(x.to(at::kDouble), qkv.weight.to(at::kDouble), qkv.bias.to(at::kDouble));
  at::Tensor out = at::zeros({2, 9, 32}, at::kDouble);
  const at::Tensor future = at::ones({9, 9}, at::kBool).triu(1);
  for (int64_t h = 0; h < 4; ++h) {
    const at::Tensor q = all.narrow(2, h * 8, 8), k = all.narrow(2, 32 + h * 8, 8), v = all.narrow(2, 64 + h * 8, 8);
    const at::Tensor scores = (at::matmul(q, k.transpose(1, 2)) / std::sqrt(8.0)).masked_fill(future, -INFINITY);
    out.narrow(2, h * 8, 8).copy_(at::matmul(at::softmax(scores, -1), v));
  }
  const at::Tensor expected = at::linear(out, proj.weight.to(at::kDouble), proj.bias.to(at::kDouble));
  EXPECT_TRUE(at::allclose(attn(x).to(at::kDouble), expected, 1e-4, 1e-5));
}

TEST(Gpt2, ShapesAndCausality) {
  torch::manual_seed(0);
  Gpt2 model(small(Sparsity::Dense));
  model->eval();
  at::Tensor tokens = at::randint(0, 64, {2, 12}, at::kLong);
  const at::Tensor logits = model->forward(tokens);
  EXPECT_EQ(logits.sizes(), at::IntArrayRef({2, 12, 64}));
  const int64_t t = 7;
  at::Tensor changed = tokens.clone();
  changed.select(1, t).add_(1).remainder_(64);
  const at::Tensor changed_logits = model->forward(changed);
  EXPECT_TRUE(at::equal(changed_logits.narrow(1, 0, t), logits.narrow(1, 0, t)));
  for (int64_t later = t; later < 12; ++later) {
    EXPECT_GT((changed_logits.select(1, later) - logits.select(1, later)).abs().max().item<double>(), 1e-6) << later;
  }
  // The full context is accepted.
  EXPECT_EQ(model->forward(at::zeros({1, 32}, at::kLong)).sizes(), at::IntArrayRef({1, 32, 64}));
}

TEST(Gpt2, TiedHeadSharesTheEmbedding) {
  torch::manual_seed(0);
  Gpt2 tied(small(Sparsity::Dense));
  EXPECT_EQ(tied->head_weight().data_ptr(), tied->token_embed->weight.data_ptr());
  EXPECT_FALSE(tied->named_parameters().contains("head.weight"));
  // Token 5 never occurs in the input, so the gradient of its embedding row comes from the head.
  const at::Tensor tokens = at::zeros({1, 4}, at::kLong);
  tied->forward(tokens).sum().backward();
  EXPECT_GT(tied->token_embed->weight.grad().select(0, 5).abs().sum().item<double>(), 0.0);

  Gpt2Options o = small(Sparsity::Dense);
  o.tied_head = false;
  Gpt2 untied(o);
  EXPECT_TRUE(untied->named_parameters().contains("head.weight"));
  EXPECT_NE(untied->head_weight().data_ptr(), untied->token_embed->weight.data_ptr());
  EXPECT_EQ(parameter_count(*untied) - parameter_count(*tied), 64 * 64);
}

TEST(Gpt2, DenseTrainingLowersTheLoss) {
  torch::manual_seed(3);
  Gpt2 model(small(Sparsity::Dense));
  expect_training_lowers_the_loss(model);
}

TEST(Gpt2, PixelflyReplacesTheMlpLayersAndTrains) {
  torch::manual_seed(4);
  Gpt2 dense(small(Sparsity::Dense)), sparse(small(Sparsity::Pixelfly));
  ASSERT_EQ(sparse->plans().size(), 4u);
  EXPECT_EQ(sparse->plans()[3].layer.name, "blocks.1.mlp.fc2");
  const auto names = sparse->named_parameters().keys();
  EXPECT_TRUE(has(names, "blocks.0.mlp.fc1.sparse.blocks"));
  EXPECT_FALSE(has(names, "blocks.0.mlp.fc1.weight"));
  EXPECT_TRUE(has(names, "blocks.0.attn.qkv.weight"));
  EXPECT_TRUE(has(names, "token_embed.weight"));
  EXPECT_LT(parameter_count(*sparse), parameter_count(*dense));
  expect_training_lowers_the_loss(sparse);

  Gpt2Options o = small(Sparsity::Pixelfly);
  o.sparsify_attention = true;
  Gpt2 with_attention(o);
  EXPECT_EQ(with_attention->plans().size(), 8u);
  EXPECT_TRUE(with_attention->blocks[0]->attn->qkv.type_info() == typeid(nn::PixelflyLinearImpl));
}

TEST(Gpt2, SmallPresetHasGpt2Size) {
  const Gpt2Options medium = gpt2_preset("gpt2-medium");
  EXPECT_EQ(medium.dim, 1024);
  EXPECT_EQ(medium.depth, 24);
  EXPECT_EQ(medium.heads, 16);
  EXPECT_EQ(medium.mlp_dim, 4096);
  // The released GPT-2 small: 124,439,808 parameters with the head tied.
  Gpt2 model(gpt2_preset("gpt2-small"));
  EXPECT_EQ(parameter_count(*model), 124439808);
}

TEST(Gpt2, RejectsBadInputs) {
  Gpt2 model(small(Sparsity::Dense));
  EXPECT_NE(error_of([&] { model->forward(at::zeros({1, 33}, at::kLong)); })
                .find("sequence length T = 33 must be in [1, context = 32]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { model->forward(at::zeros({1, 8})); }).find("int64"), std::string::npos);
  EXPECT_NE(error_of([&] { model->forward(at::zeros({8}, at::kLong)); }).find("tokens must be a (batch, T)"),
            std::string::npos);
  Gpt2Options o = small(Sparsity::Dense);
  o.heads = 3;
  EXPECT_NE(error_of([&] { Gpt2{o}; }).find("heads 3 must divide dim 64"), std::string::npos);
  EXPECT_NE(error_of([] { gpt2_preset("gpt3"); }).find("unknown GPT-2 preset 'gpt3'"), std::string::npos);
}

}  // namespace
}  // namespace pixelfly::models
