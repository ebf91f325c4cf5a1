// sparsify on a small hand-written model: exactly the planned slots become PixelflyLinear layers
// with the planner's settings (in the slot and in the registration), the others stay the same
// objects, the model still runs and trains, and bad slots are rejected before anything changes.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "common/error_message.h"
#include "pixelfly/nn/pixelfly_linear.h"
#include "pixelfly/nn/sparsify.h"

namespace pixelfly::nn {
namespace {

using pixelfly::testing::error_of;

// A user's model: a residual MLP with a dense gate, and an output layer.
struct UserBlockImpl : torch::nn::Module {
  UserBlockImpl() {
    fc1 = torch::nn::AnyModule(torch::nn::Linear(64, 128));
    fc2 = torch::nn::AnyModule(torch::nn::Linear(torch::nn::LinearOptions(128, 64).bias(false)));
    register_module("fc1", fc1.ptr());
    register_module("fc2", fc2.ptr());
    gate = register_module("gate", torch::nn::Linear(64, 64));
  }
  at::Tensor forward(const at::Tensor& x) {
    return x + fc2.forward(at::relu(fc1.forward(x))) * at::sigmoid(gate(x));
  }
  torch::nn::AnyModule fc1, fc2;
  torch::nn::Linear gate{nullptr};
};
TORCH_MODULE(UserBlock);

struct UserNetImpl : torch::nn::Module {
  UserNetImpl() {
    block = register_module("block", UserBlock());
    out = torch::nn::AnyModule(torch::nn::Linear(64, 4));
    register_module("out", out.ptr());
  }
  at::Tensor forward(const at::Tensor& x) { return out.forward(block(x)); }
  std::vector<LinearSlot> slots() {
    return {{"block.fc1", "mlp", &block->fc1}, {"block.fc2", "mlp", &block->fc2}, {"out", "head", &out}};
  }
  UserBlock block{nullptr};
  torch::nn::AnyModule out;
};
TORCH_MODULE(UserNet);

PlannerOptions quarter_density() {
  PlannerOptions planner;
  planner.density_by_type = {{"mlp", 0.25}};
  planner.block_sizes = {8};
  return planner;
}

std::set<std::string> parameter_names(const torch::nn::Module& m) {
  const auto keys = m.named_parameters().keys();
  return {keys.begin(), keys.end()};
}

TEST(Sparsify, ReplacesExactlyThePlannedSlots) {
  torch::manual_seed(0);
  UserNet net;
  const auto* gate_before = net->block->gate.get();
  const auto* out_before = net->out.ptr().get();
  const at::Tensor gate_weight = net->block->gate->weight.clone();

  const std::vector<LayerPlan> plans = sparsify(*net, net->slots(), quarter_density());

  ASSERT_EQ(plans.size(), 3u);
  EXPECT_TRUE(plans[0].sparse);
  EXPECT_TRUE(plans[1].sparse);
  EXPECT_FALSE(plans[2].sparse);  // type "head" has no budget
  EXPECT_EQ(plans[0].layer.name, "block.fc1");
  EXPECT_EQ(plans[0].layer.out_features, 128);
  EXPECT_EQ(plans[0].layer.in_features, 64);
  EXPECT_EQ(plans[1].layer.out_features, 64);
  EXPECT_EQ(plans[1].layer.in_features, 128);

  const std::set<std::string> expected = {
      "block.fc1.sparse.blocks", "block.fc1.low_rank.u", "block.fc1.low_rank.v", "block.fc1.mix_logit",
      "block.fc1.bias",  // the dense fc1 had a bias, fc2 had none
      "block.fc2.sparse.blocks", "block.fc2.low_rank.u", "block.fc2.low_rank.v", "block.fc2.mix_logit",
      "block.gate.weight", "block.gate.bias", "out.weight", "out.bias"};
  EXPECT_EQ(parameter_names(*net), expected);

  // The slot and the registration hold the same new layer, with the plan's settings.
  const auto modules = net->named_modules();
  for (int i = 0; i < 2; ++i) {
    const LinearSlot slot = net->slots()[i];
    ASSERT_TRUE(slot.slot->type_info() == typeid(PixelflyLinearImpl)) << slot.name;
    const auto& layer = *slot.slot->get<PixelflyLinear>();
    EXPECT_EQ(modules[slot.name].get(), slot.slot->ptr().get()) << slot.name;
    EXPECT_EQ(layer.options.butterfly_size(), plans[i].butterfly_size);
    EXPECT_EQ(layer.options.factors(), plans[i].factors);
    EXPECT_EQ(layer.options.block(), plans[i].block);
    EXPECT_EQ(layer.rank(), plans[i].rank);
    EXPECT_GE(layer.rank(), 1);
    EXPECT_EQ(layer.parameter_count() - (layer.bias.defined() ? layer.bias.numel() : 0) - 1, plans[i].params);
  }
  // The others are the very same modules, unchanged.
  EXPECT_EQ(net->block->gate.get(), gate_before);
  EXPECT_EQ(modules["block.gate"].get(), gate_before);
  EXPECT_EQ(net->out.ptr().get(), out_before);
  EXPECT_TRUE(at::equal(net->block->gate->weight, gate_weight));
}

TEST(Sparsify, SparsifiedModelRunsAndTrains) {
  torch::manual_seed(1);
  UserNet net;
  sparsify(*net, net->slots(), quarter_density());
  const at::Tensor x = at::randn({16, 64}), labels = at::randint(0, 4, {16}, at::kLong);
  EXPECT_EQ(net->forward(x).sizes(), at::IntArrayRef({16, 4}));

  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-2));
  double first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    opt.zero_grad();
    const at::Tensor loss = torch::nn::functional::cross_entropy(net->forward(x), labels);
    loss.backward();
    if (step == 0) {
      for (const auto& p : net->named_parameters()) {
        ASSERT_TRUE(p.value().grad().defined()) << p.key();
        EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
      }
    }
    opt.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, 0.5 * first);
}

TEST(Sparsify, RejectsBadSlotsBeforeChangingAnything) {
  UserNet net;
  const auto names_before = parameter_names(*net);
  auto conv = torch::nn::AnyModule(torch::nn::Conv1d(4, 4, 1));
  net->register_module("conv", conv.ptr());
  std::vector<LinearSlot> slots = net->slots();

  slots.push_back({"conv", "mlp", &conv});
  EXPECT_NE(error_of([&] { sparsify(*net, slots, quarter_density()); }).find("slot 'conv' must hold a dense torch::nn::Linear"),
            std::string::npos);

  auto stray = torch::nn::AnyModule(torch::nn::Linear(64, 64));
  slots.back() = {"block.fc3", "mlp", &stray};
  EXPECT_NE(error_of([&] { sparsify(*net, slots, quarter_density()); }).find("slot 'block.fc3' is not registered"),
            std::string::npos);
  slots.back() = {"nowhere.fc1", "mlp", &stray};
  EXPECT_NE(error_of([&] { sparsify(*net, slots, quarter_density()); }).find("no module 'nowhere'"),
            std::string::npos);
  slots.back() = {"block.gate", "mlp", &stray};  // registered, but to another module
  EXPECT_NE(error_of([&] { sparsify(*net, slots, quarter_density()); }).find("holds another module"),
            std::string::npos);
  slots.back() = {"block.fc1", "mlp", nullptr};
  EXPECT_NE(error_of([&] { sparsify(*net, slots, quarter_density()); }).find("slot 'block.fc1' is empty"),
            std::string::npos);

  PlannerOptions no_low_rank = quarter_density();
  no_low_rank.low_rank_share = 0.0;
  EXPECT_NE(error_of([&] { sparsify(*net, net->slots(), no_low_rank); }).find("low_rank_share > 0"),
            std::string::npos);
  PlannerOptions too_dense = quarter_density();
  too_dense.density_by_type["mlp"] = 1.5;
  EXPECT_NE(error_of([&] { sparsify(*net, net->slots(), too_dense); }).find("sparsify:"), std::string::npos);

  net->unregister_module("conv");
  EXPECT_EQ(parameter_names(*net), names_before);
  EXPECT_TRUE(net->block->fc1.type_info() == typeid(torch::nn::LinearImpl));
}

}  // namespace
}  // namespace pixelfly::nn
