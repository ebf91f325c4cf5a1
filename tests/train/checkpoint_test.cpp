// Checkpoints: a resumed run takes the very next step bit for bit like an uninterrupted one
// (weights, BatchNorm statistics, SGD momentum, AdamW moments), mismatched models are refused
// with one clear error, old checkpoints are pruned, and a failed save changes nothing.
#include "pixelfly/train/checkpoint.h"

#include "pixelfly/io/safetensors.h"

#include "common/error_message.h"
#include "io/temp_dir.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace pixelfly::train {
namespace {

using pixelfly::testing::error_of;
using pixelfly::testing::exists;
using pixelfly::testing::read_bytes;
using pixelfly::testing::TempDir;
using pixelfly::testing::write_bytes;

// Nested modules so names are dotted several levels deep; BatchNorm brings buffers (float
// running statistics and an int64 counter).
struct NetImpl : torch::nn::Module {
  explicit NetImpl(int64_t hidden = 8)
      : blocks(register_module("blocks", torch::nn::Sequential(torch::nn::Linear(6, hidden),
                                                                 torch::nn::BatchNorm1d(hidden)))),
        head(register_module("head", torch::nn::Linear(hidden, 3))) {}
  torch::Tensor forward(const torch::Tensor& x) { return head(torch::relu(blocks->forward(x))); }
  torch::nn::Sequential blocks;
  torch::nn::Linear head;
};
TORCH_MODULE(Net);

struct Batch {
  torch::Tensor x, y;
};

std::vector<Batch> make_batches(int count) {
  torch::manual_seed(1234);
  std::vector<Batch> batches;
  for (int i = 0; i < count; ++i) batches.push_back({torch::randn({5, 6}), torch::randint(0, 3, {5})});
  return batches;
}

void train_step(Net& net, torch::optim::Optimizer& optimizer, const Batch& batch) {
  optimizer.zero_grad();
  torch::nn::functional::cross_entropy(net->forward(batch.x), batch.y).backward();
  optimizer.step();
}

// Every parameter and buffer equal bit for bit.
void expect_same_state(const Net& actual, const Net& expected) {
  const auto a = actual->named_parameters();
  const auto e = expected->named_parameters();
  ASSERT_EQ(a.size(), e.size());
  for (const auto& item : e) EXPECT_TRUE(torch::equal(a[item.key()], item.value())) << item.key();
  const auto ab = actual->named_buffers();
  const auto eb = expected->named_buffers();
  ASSERT_EQ(ab.size(), eb.size());
  for (const auto& item : eb) EXPECT_TRUE(torch::equal(ab[item.key()], item.value())) << item.key();
}

using OptimizerFactory = std::function<std::unique_ptr<torch::optim::Optimizer>(Net&, double lr)>;

// Trains 3 steps, saves, and compares the 4th step of the same run with the 4th step of a
// differently initialised model (and an optimiser with another lr) restored from the save.
void expect_resume_is_exact(const OptimizerFactory& make_optimizer) {
  const std::vector<Batch> batches = make_batches(4);
  TempDir run;
  torch::manual_seed(0);
  Net original;
  auto original_optimizer = make_optimizer(original, 0.05);
  for (int i = 0; i < 3; ++i) train_step(original, *original_optimizer, batches[i]);
  const nlohmann::json trainer_state = {{"step", 3}, {"epoch", 1}, {"rng", {1, 2, 3}}, {"config", {{"lr", 0.05}}}};
  const std::string saved = save_checkpoint(run.path(), 3, *original, original_optimizer.get(), trainer_state);
  EXPECT_EQ(saved, run / "checkpoints/step_00000003");
  train_step(original, *original_optimizer, batches[3]);

  torch::manual_seed(99);
  Net resumed;
  auto resumed_optimizer = make_optimizer(resumed, 0.7);
  train_step(resumed, *resumed_optimizer, batches[0]);  // stale state that loading must replace
  EXPECT_EQ(load_checkpoint(run.path(), *resumed, resumed_optimizer.get()), trainer_state);
  EXPECT_EQ(resumed_optimizer->param_groups()[0].options().get_lr(), 0.05);
  train_step(resumed, *resumed_optimizer, batches[3]);
  expect_same_state(resumed, original);
}

TEST(Checkpoint, ResumeWithSgdMomentumIsBitExact) {
  expect_resume_is_exact([](Net& net, double lr) {
    return std::make_unique<torch::optim::SGD>(net->parameters(),
                                               torch::optim::SGDOptions(lr).momentum(0.9).weight_decay(1e-4));
  });
}

TEST(Checkpoint, ResumeWithAdamWIsBitExact) {
  expect_resume_is_exact([](Net& net, double lr) {
    return std::make_unique<torch::optim::AdamW>(net->parameters(), torch::optim::AdamWOptions(lr).weight_decay(0.01));
  });
}

TEST(Checkpoint, WeightsFileUsesTheModuleNames) {
  TempDir dir;
  Net net;
  save_model_weights(dir / "w.safetensors", *net, {{"sparsity", "0.5"}});
  const io::NamedTensors file = io::load_safetensors(dir / "w.safetensors");
  std::vector<std::string> names;
  for (const auto& item : file.tensors) names.push_back(item.first);
  EXPECT_EQ(names, (std::vector<std::string>{"blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias",
                                             "head.weight", "head.bias", "blocks.1.running_mean",
                                             "blocks.1.running_var", "blocks.1.num_batches_tracked"}));
  EXPECT_EQ(file.metadata.at("sparsity"), "0.5");
  EXPECT_EQ(file.tensors.back().second.scalar_type(), torch::kLong);

  Net other;
  load_model_weights(dir / "w.safetensors", *other);
  expect_same_state(other, net);
}

TEST(Checkpoint, MismatchedModelIsRefusedWithEveryDifferenceAndLeftUnchanged) {
  TempDir run;
  Net saved;
  save_checkpoint(run.path(), 1, *saved, nullptr, nlohmann::json::object());

  // Hidden width 4 instead of 8, plus a module the checkpoint lacks, minus the head's bias.
  struct OtherImpl : torch::nn::Module {
    OtherImpl() {
      register_module("blocks", torch::nn::Sequential(torch::nn::Linear(6, 4), torch::nn::BatchNorm1d(4)));
      register_module("head", torch::nn::Linear(torch::nn::LinearOptions(8, 3).bias(false)));
      register_module("extra", torch::nn::Linear(2, 2));
    }
  };
  auto other = std::make_shared<OtherImpl>();
  const torch::Tensor before = other->named_parameters()["extra.weight"].clone();
  const std::string weights = run / "checkpoints/step_00000001/model.safetensors";
  EXPECT_EQ(error_of([&] { load_checkpoint(run.path(), *other, nullptr); }),
            "the weights in '" + weights + "' do not match the model:\n"
            "  in the model but not in the file (2): extra.weight, extra.bias\n"
            "  in the file but not in the model (1): head.bias\n"
            "  shape or dtype differs (6): blocks.0.weight (file Float [8, 6], model Float [4, 6]), "
            "blocks.0.bias (file Float [8], model Float [4]), blocks.1.weight (file Float [8], model Float [4]), "
            "blocks.1.bias (file Float [8], model Float [4]), blocks.1.running_mean (file Float [8], model Float [4]), "
            "blocks.1.running_var (file Float [8], model Float [4])");
  EXPECT_TRUE(torch::equal(other->named_parameters()["extra.weight"], before));
}

TEST(Checkpoint, KeepsTheNewestCheckpoints) {
  TempDir run;
  Net net;
  for (int64_t step = 10; step <= 50; step += 10) save_checkpoint(run.path(), step, *net, nullptr, {{"step", step}}, 2);
  EXPECT_FALSE(exists(run / "checkpoints/step_00000030"));
  EXPECT_TRUE(exists(run / "checkpoints/step_00000040"));
  EXPECT_TRUE(exists(run / "checkpoints/step_00000050"));
  EXPECT_EQ(read_bytes(run / "checkpoints/latest"), "step_00000050\n");

  // Resuming from an earlier step: later checkpoints of the abandoned run stay.
  save_checkpoint(run.path(), 45, *net, nullptr, {{"step", 45}}, 1);
  EXPECT_FALSE(exists(run / "checkpoints/step_00000040"));
  EXPECT_TRUE(exists(run / "checkpoints/step_00000050"));
  EXPECT_EQ(latest_checkpoint(run.path()), run / "checkpoints/step_00000045");

  save_checkpoint(run.path(), 60, *net, nullptr, {}, 0);  // keep = 0 keeps everything
  EXPECT_TRUE(exists(run / "checkpoints/step_00000045"));
  EXPECT_EQ(error_of([&] { save_checkpoint(run.path(), 70, *net, nullptr, {}, -1); }),
            "save_checkpoint: keep must be >= 0 (0 keeps every checkpoint), got -1");
}

TEST(Checkpoint, SavingTheSameStepAgainReplacesIt) {
  TempDir run;
  Net net;
  save_checkpoint(run.path(), 5, *net, nullptr, {{"version", 1}});
  {
    torch::NoGradGuard no_grad;
    net->head->weight.fill_(0.25);
  }
  save_checkpoint(run.path(), 5, *net, nullptr, {{"version", 2}});
  Net loaded;
  EXPECT_EQ(load_checkpoint(run.path(), *loaded, nullptr), (nlohmann::json{{"version", 2}}));
  expect_same_state(loaded, net);
  EXPECT_EQ(read_bytes(run / "checkpoints/latest"), "step_00000005\n");
}

// An optimiser whose state cannot be written, to fail a save half-way.
class UnsavableSgd : public torch::optim::SGD {
 public:
  using torch::optim::SGD::SGD;
  void save(torch::serialize::OutputArchive&) const override { throw std::runtime_error("disk full (simulated)"); }
};

TEST(Checkpoint, FailedSaveLeavesThePreviousCheckpointAndLatest) {
  TempDir run;
  Net net;
  torch::optim::SGD good(net->parameters(), 0.1);
  save_checkpoint(run.path(), 1, *net, &good, {{"step", 1}});
  const std::string latest = read_bytes(run / "checkpoints/latest");

  UnsavableSgd bad(net->parameters(), 0.1);
  EXPECT_THROW(save_checkpoint(run.path(), 2, *net, &bad, {{"step", 2}}), std::runtime_error);
  const nlohmann::json not_utf8 = {{"note", std::string("\xff", 1)}};
  EXPECT_NE(error_of([&] { save_checkpoint(run.path(), 3, *net, nullptr, not_utf8); })
                .find("save_checkpoint: the trainer state cannot be written as JSON"),
            std::string::npos);
  write_bytes(run / "blocked", "a file where a directory is needed");
  EXPECT_THROW(save_checkpoint(run / "blocked/run", 1, *net, nullptr, {}), std::runtime_error);

  EXPECT_EQ(read_bytes(run / "checkpoints/latest"), latest);
  EXPECT_FALSE(exists(run / "checkpoints/step_00000002"));
  EXPECT_FALSE(exists(run / "checkpoints/step_00000003"));
  EXPECT_FALSE(exists(run / "checkpoints/.incomplete.step_00000002"));
  EXPECT_FALSE(exists(run / "checkpoints/.incomplete.step_00000003"));
  Net loaded;
  torch::optim::SGD loaded_optimizer(loaded->parameters(), 0.1);
  EXPECT_EQ(load_checkpoint(run.path(), *loaded, &loaded_optimizer), (nlohmann::json{{"step", 1}}));
  expect_same_state(loaded, net);
}

TEST(Checkpoint, LeftoverOfACrashedSaveIsCleanedUp) {
  TempDir run;
  Net net;
  save_checkpoint(run.path(), 1, *net, nullptr, {});
  write_bytes(run / "checkpoints/.incomplete.step_00000002", "half-written");
  save_checkpoint(run.path(), 3, *net, nullptr, {});
  EXPECT_FALSE(exists(run / "checkpoints/.incomplete.step_00000002"));
}

TEST(Checkpoint, LatestAcceptsRunCheckpointsAndCheckpointDirectories) {
  TempDir run;
  Net net;
  save_checkpoint(run.path(), 7, *net, nullptr, {});
  const std::string expected = run / "checkpoints/step_00000007";
  EXPECT_EQ(latest_checkpoint(run.path()), expected);
  EXPECT_EQ(latest_checkpoint(run / "checkpoints"), expected);
  EXPECT_EQ(latest_checkpoint(expected), expected);

  TempDir empty;
  EXPECT_EQ(error_of([&] { latest_checkpoint(empty.path()); }),
            "no checkpoint found at '" + empty.path() +
                "': expected a checkpoint directory (holding model.safetensors), a checkpoints directory (holding "
                "'latest') or a run directory (holding checkpoints/latest)");
  write_bytes(run / "checkpoints/latest", "step_00000099\n");
  EXPECT_EQ(error_of([&] { latest_checkpoint(run.path()); }),
            "'" + (run / "checkpoints/latest") + "' names 'step_00000099', but '" +
                (run / "checkpoints/step_00000099") + "' holds no model.safetensors");
  write_bytes(run / "checkpoints/latest", "../elsewhere\n");
  EXPECT_EQ(error_of([&] { latest_checkpoint(run.path()); }),
            "'" + (run / "checkpoints/latest") +
                "' should name a checkpoint directory beside it, but holds '../elsewhere'");
}

TEST(Checkpoint, OptimizerStateMustExistWhenAsked) {
  TempDir run;
  Net net;
  save_checkpoint(run.path(), 1, *net, nullptr, {{"step", 1}});
  torch::optim::SGD optimizer(net->parameters(), 0.1);
  EXPECT_EQ(error_of([&] { load_checkpoint(run.path(), *net, &optimizer); }),
            "cannot load the optimizer state: '" + (run / "checkpoints/step_00000001/optimizer.pt") +
                "' does not exist (the checkpoint was saved without an optimizer; load it without one)");
  EXPECT_EQ(load_checkpoint(run.path(), *net, nullptr), (nlohmann::json{{"step", 1}}));
}

TEST(Checkpoint, LoadsOntoTheModelsDevice) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const std::vector<Batch> batches = make_batches(2);
  TempDir run;
  torch::manual_seed(0);
  Net cpu;
  torch::optim::AdamW cpu_optimizer(cpu->parameters(), 0.01);
  train_step(cpu, cpu_optimizer, batches[0]);
  save_checkpoint(run.path(), 1, *cpu, &cpu_optimizer, {});

  Net gpu;
  gpu->to(torch::kCUDA);
  torch::optim::AdamW gpu_optimizer(gpu->parameters(), 0.01);
  load_checkpoint(run.path(), *gpu, &gpu_optimizer);
  EXPECT_TRUE(gpu->head->weight.is_cuda());
  train_step(gpu, gpu_optimizer, {batches[1].x.cuda(), batches[1].y.cuda()});  // state on the GPU too
  train_step(cpu, cpu_optimizer, batches[1]);
  EXPECT_TRUE(torch::allclose(gpu->head->weight.cpu(), cpu->head->weight, 1e-5, 1e-6));
}

}  // namespace
}  // namespace pixelfly::train
