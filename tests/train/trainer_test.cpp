// The training loop end to end on small synthetic data (CPU, a few seconds each): a run learns
// and fills its run directory; a run stopped by train.max_steps and resumed matches an
// uninterrupted one bit for bit (step losses, epoch records, final weights) for AdamW, SGD and
// CrAM; run directories are guarded; a non-finite loss stops the run and keeps the last good
// checkpoint; text and Pixelfly models train; on a GPU, steps captured as a CUDA graph train as
// eager ones and resume as exactly.
#include "pixelfly/train/trainer.h"

#include "pixelfly/io/safetensors.h"
#include "pixelfly/train/checkpoint.h"
#include "pixelfly/train/config.h"
#include "pixelfly/train/metrics_log.h"

#include "io/temp_dir.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

namespace pixelfly::train {
namespace {

using nlohmann::json;
using pixelfly::testing::exists;
using pixelfly::testing::read_bytes;
using pixelfly::testing::TempDir;

// 256 synthetic 1x28x28 images in batches of 32: 8 steps per epoch.
json image_config(const std::string& run_dir, std::vector<std::string> overrides) {
  std::vector<std::string> all = {"run.dir=" + run_dir,
                                  "data.name=synthetic-images",
                                  "data.image_size=28",
                                  "data.channels=1",
                                  "data.synthetic_count=256",
                                  "data.batch_size=32",
                                  "data.eval_batch_size=128",
                                  "data.prefetch=0",
                                  "model.preset=mixer-small28",
                                  "schedule.epochs=2",
                                  "optim.lr=0.003",
                                  "train.log_every=1",
                                  "train.plots=false"};
  all.insert(all.end(), overrides.begin(), overrides.end());
  return load_config("", all);
}

TrainSummary train(const json& config, bool resume = false) {
  at::set_num_threads(1);
  TrainOptions options;
  options.resume = resume;
  std::ostringstream out;
  return train_model(config, options, out);
}

std::vector<json> records_of_kind(const std::string& run_dir, const std::string& kind) {
  std::vector<json> out;
  for (const json& r : read_metrics(run_dir + "/metrics.jsonl")) {
    if (r.at("kind") == kind) out.push_back(r);
  }
  return out;
}

std::vector<double> step_losses(const std::string& run_dir) {
  std::vector<double> losses;
  for (const json& r : records_of_kind(run_dir, "step")) {
    EXPECT_EQ(r.at("step").get<int64_t>(), static_cast<int64_t>(losses.size()) + 1) << "steps out of order";
    losses.push_back(r.at("loss").get<double>());
  }
  return losses;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

TEST(Trainer, ShortRunLearnsAndFillsTheRunDirectory) {
  TempDir dir;
  const std::string run = dir / "run";
  const json config = image_config(run, {"schedule.epochs=3", "data.augment=false"});
  const TrainSummary s = train(config);

  EXPECT_TRUE(s.finished);
  EXPECT_EQ(s.stop_reason, "");
  EXPECT_EQ(s.steps, 24);
  EXPECT_EQ(s.epochs, 3);
  EXPECT_EQ(s.parameters, 541130);
  EXPECT_GT(s.final_accuracy, 0.5);  // chance: 0.1
  EXPECT_GT(s.train_flops_per_step, 0);

  const std::vector<double> losses = step_losses(run);
  ASSERT_EQ(losses.size(), 24u);
  EXPECT_NEAR(losses.front(), std::log(10.0), 0.5);
  EXPECT_LT(losses.back(), 0.5 * losses.front());
  const std::vector<json> epochs = records_of_kind(run, "epoch");
  ASSERT_EQ(epochs.size(), 3u);
  for (int e = 0; e < 3; ++e) {
    EXPECT_EQ(epochs[e].at("epoch"), e + 1);
    EXPECT_EQ(epochs[e].at("step"), 8 * (e + 1));
    double sum = 0;
    for (int i = 0; i < 8; ++i) sum += losses[8 * e + i];
    EXPECT_NEAR(epochs[e].at("train_loss").get<double>(), sum / 8, 1e-12);
  }
  EXPECT_LT(epochs[2].at("eval_loss").get<double>(), epochs[0].at("eval_loss").get<double>());
  EXPECT_DOUBLE_EQ(epochs[2].at("eval_accuracy").get<double>(), s.final_accuracy);
  EXPECT_FALSE(epochs[2].contains("bits_per_byte"));

  EXPECT_EQ(json::parse(read_bytes(run + "/config.json")), config);
  EXPECT_EQ(first_line(read_bytes(run + "/checkpoints/latest")), "step_00000024");
  EXPECT_FALSE(exists(run + "/checkpoints/step_00000008"));  // train.keep_checkpoints = 2
  EXPECT_TRUE(exists(run + "/checkpoints/step_00000016/model.safetensors"));
  EXPECT_TRUE(exists(run + "/checkpoints/step_00000024/optimizer.pt"));
  const json trainer_state = json::parse(read_bytes(run + "/checkpoints/step_00000024/trainer.json"));
  EXPECT_EQ(trainer_state.at("step"), 24);
  EXPECT_EQ(trainer_state.at("epoch"), 3);
  const json summary = json::parse(read_bytes(run + "/summary.json"));
  EXPECT_EQ(summary, s.to_json());
  EXPECT_EQ(summary.at("finished"), true);
  EXPECT_EQ(summary.at("steps"), 24);

  // Resuming a finished run is refused and leaves its summary alone.
  try {
    train(config, /*resume=*/true);
    ADD_FAILURE() << "resuming a finished run did not throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "--resume: the run in '" + run +
                                         "' has already finished its 3 epochs; raise schedule.epochs to train on");
  }
  EXPECT_EQ(json::parse(read_bytes(run + "/summary.json")), summary);
}

void expect_same_weights(const std::string& a, const std::string& b) {
  const io::NamedTensors x = io::load_safetensors(a), y = io::load_safetensors(b);
  ASSERT_EQ(x.tensors.size(), y.tensors.size());
  for (size_t i = 0; i < x.tensors.size(); ++i) {
    EXPECT_EQ(x.tensors[i].first, y.tensors[i].first);
    EXPECT_TRUE(at::equal(x.tensors[i].second, y.tensors[i].second)) << x.tensors[i].first << " differs";
  }
}

// Trains 2 epochs uninterrupted, then the same configuration stopped after `stop_at` steps and
// resumed; everything the runs record must agree bit for bit.
void expect_exact_resume(const std::vector<std::string>& overrides, int64_t stop_at) {
  TempDir dir;
  const std::string whole = dir / "whole", split = dir / "split";
  const TrainSummary reference = train(image_config(whole, overrides));
  ASSERT_TRUE(reference.finished);

  std::vector<std::string> stopped = overrides;
  stopped.push_back("train.max_steps=" + std::to_string(stop_at));
  const TrainSummary first = train(image_config(split, stopped));
  EXPECT_FALSE(first.finished);
  EXPECT_EQ(first.steps, stop_at);
  EXPECT_NE(first.stop_reason.find("train.max_steps"), std::string::npos) << first.stop_reason;
  EXPECT_EQ(step_losses(split).size(), static_cast<size_t>(stop_at));
  EXPECT_FALSE(exists(split + "/summary.json") && json::parse(read_bytes(split + "/summary.json")).at("finished"));

  const TrainSummary resumed = train(image_config(split, overrides), /*resume=*/true);
  EXPECT_TRUE(resumed.finished);
  EXPECT_EQ(resumed.steps, 16);

  const std::vector<double> expected = step_losses(whole), actual = step_losses(split);
  ASSERT_EQ(expected.size(), 16u);
  ASSERT_EQ(actual.size(), 16u);
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(actual[i], expected[i]) << "step " << i + 1;
  const std::vector<json> expected_epochs = records_of_kind(whole, "epoch"), actual_epochs = records_of_kind(split, "epoch");
  ASSERT_EQ(actual_epochs.size(), 2u);
  ASSERT_EQ(expected_epochs.size(), 2u);
  for (size_t e = 0; e < 2; ++e) {
    for (const char* key : {"epoch", "step", "train_loss", "eval_loss", "eval_accuracy"}) {
      EXPECT_EQ(actual_epochs[e].at(key), expected_epochs[e].at(key)) << key << " of epoch " << e + 1;
    }
  }
  EXPECT_EQ(resumed.final_loss, reference.final_loss);
  EXPECT_EQ(resumed.final_accuracy, reference.final_accuracy);
  expect_same_weights(split + "/checkpoints/step_00000016/model.safetensors",
                      whole + "/checkpoints/step_00000016/model.safetensors");
}

TEST(Trainer, ResumeIsExactWithAdamW) {
  expect_exact_resume({"optim.name=adamw", "data.prefetch=2"}, 12);
}

TEST(Trainer, ResumeIsExactWithSgd) {
  expect_exact_resume({"optim.name=sgd", "optim.lr=0.05", "optim.nesterov=true", "schedule.warmup_epochs=1"}, 5);
}

TEST(Trainer, ResumeIsExactWithCram) {
  // Three compressors drawn at random each step: the draws after the resume must be the same.
  expect_exact_resume({"optim.name=cram", "optim.cram.base=sgd", "optim.lr=0.05", "data.prefetch=2"}, 11);
}

TEST(Trainer, ResumeFromAnEpochBoundaryIsExact) {
  expect_exact_resume({"optim.name=adamw", "data.augment=false"}, 8);
}

TEST(Trainer, RefusesAFreshRunOverCheckpointsAndAResumeWithoutOne) {
  TempDir dir;
  const std::string run = dir / "run";
  try {
    train(image_config(run, {"train.max_steps=2"}), /*resume=*/true);
    ADD_FAILURE() << "resume without a checkpoint did not throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "--resume: run directory '" + run + "' has no checkpoint to resume from");
  }
  train(image_config(run, {"train.max_steps=2"}));
  const std::string metrics_before = read_bytes(run + "/metrics.jsonl");
  try {
    train(image_config(run, {"train.max_steps=2"}));
    ADD_FAILURE() << "a fresh run over a run with checkpoints did not throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "run directory '" + run +
                                         "' already holds a run with checkpoints; pass --resume to continue it or "
                                         "choose another run.dir");
  }
  EXPECT_EQ(read_bytes(run + "/metrics.jsonl"), metrics_before);
  EXPECT_EQ(first_line(read_bytes(run + "/checkpoints/latest")), "step_00000002");
}

TEST(Trainer, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  TempDir dir;
  const std::string run = dir / "run";
  // Plain SGD at the largest learning rate allowed diverges within a few steps; a checkpoint
  // after every step shows which one is kept.
  const TrainSummary s = train(image_config(run, {"optim.name=sgd", "optim.lr=1000", "optim.momentum=0",
                                                  "data.augment=false", "train.checkpoint_every=1"}));
  EXPECT_FALSE(s.finished);
  ASSERT_EQ(s.stop_reason.rfind("non-finite loss (", 0), 0u) << s.stop_reason;
  const int64_t bad_step = s.steps + 1;
  EXPECT_NE(s.stop_reason.find(") at step " + std::to_string(bad_step)), std::string::npos) << s.stop_reason;
  ASSERT_GE(s.steps, 1);
  ASSERT_LT(s.steps, 8);

  const std::vector<json> stops = records_of_kind(run, "stop");
  ASSERT_EQ(stops.size(), 1u);
  EXPECT_EQ(stops[0].at("step"), bad_step);
  EXPECT_EQ(stops[0].at("reason"), s.stop_reason);
  const std::vector<double> losses = step_losses(run);
  ASSERT_EQ(losses.size(), static_cast<size_t>(s.steps));
  for (double loss : losses) EXPECT_TRUE(std::isfinite(loss));

  char name[32];
  std::snprintf(name, sizeof name, "step_%08lld", static_cast<long long>(s.steps));
  EXPECT_EQ(first_line(read_bytes(run + "/checkpoints/latest")), name);
  for (const auto& [tensor_name, tensor] : io::load_safetensors(run + "/checkpoints/" + name + "/model.safetensors").tensors) {
    EXPECT_TRUE(at::isfinite(tensor).all().item<bool>()) << tensor_name;
  }
  const json summary = json::parse(read_bytes(run + "/summary.json"));
  EXPECT_EQ(summary.at("finished"), false);
  EXPECT_EQ(summary.at("stop_reason"), s.stop_reason);
}

TEST(Trainer, LanguageModelLearnsAndReportsBitsPerByte) {
  TempDir dir;
  const std::string run = dir / "run";
  const TrainSummary s = train(load_config("", {"run.dir=" + run, "data.name=synthetic-text", "model.preset=gpt2-tiny",
                                                "data.context=32", "data.synthetic_count=20000", "data.batch_size=16",
                                                "data.steps_per_epoch=10", "data.eval_batches=4",
                                                "data.eval_batch_size=32", "data.prefetch=0", "schedule.epochs=2",
                                                "optim.lr=0.003", "train.log_every=1", "train.plots=false"}));
  EXPECT_TRUE(s.finished);
  EXPECT_EQ(s.steps, 20);
  EXPECT_NEAR(s.bits_per_byte, s.final_loss / std::log(2.0), 1e-12);
  EXPECT_LT(s.bits_per_byte, 8.0);  // a uniform guess over 256 bytes: 8 bits
  const std::vector<double> losses = step_losses(run);
  ASSERT_EQ(losses.size(), 20u);
  EXPECT_NEAR(losses.front(), std::log(256.0), 0.5);
  EXPECT_LT(losses.back(), losses.front() - 0.3);
  const std::vector<json> epochs = records_of_kind(run, "epoch");
  ASSERT_EQ(epochs.size(), 2u);
  EXPECT_DOUBLE_EQ(epochs[1].at("bits_per_byte").get<double>(), s.bits_per_byte);
  EXPECT_LT(epochs[1].at("eval_loss").get<double>(), epochs[0].at("eval_loss").get<double>());
  EXPECT_DOUBLE_EQ(json::parse(read_bytes(run + "/summary.json")).at("bits_per_byte").get<double>(), s.bits_per_byte);
}

TEST(Trainer, PixelflyModelTrains) {
  TempDir dir;
  const std::string run = dir / "run";
  const TrainSummary s =
      train(image_config(run, {"model.sparsity=pixelfly", "schedule.epochs=3", "data.augment=false"}));
  EXPECT_TRUE(s.finished);
  EXPECT_LT(s.parameters, 541130 / 2);  // the mixing MLPs at density 0.25
  EXPECT_GT(s.final_accuracy, 0.5);
  const std::vector<double> losses = step_losses(run);
  ASSERT_EQ(losses.size(), 24u);
  EXPECT_LT(losses.back(), 0.5 * losses.front());
  bool has_sparse_weights = false;
  for (const auto& [name, tensor] : io::load_safetensors(latest_checkpoint(run) + "/model.safetensors").tensors) {
    has_sparse_weights = has_sparse_weights || name.find("sparse") != std::string::npos;
  }
  EXPECT_TRUE(has_sparse_weights);
}

TEST(Trainer, CudaGraphNeedsACudaDevice) {
  TempDir dir;
  try {
    train(image_config(dir / "run", {"run.device=cpu", "train.cuda_graph=true"}));
    ADD_FAILURE() << "train.cuda_graph on the CPU did not throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "train.cuda_graph = true needs a CUDA device (run.device is cpu)");
  }
}

void expect_close_weights(const std::string& a, const std::string& b, double tolerance) {
  const io::NamedTensors x = io::load_safetensors(a), y = io::load_safetensors(b);
  ASSERT_EQ(x.tensors.size(), y.tensors.size());
  for (size_t i = 0; i < x.tensors.size(); ++i) {
    const at::Tensor u = x.tensors[i].second.to(at::kDouble), v = y.tensors[i].second.to(at::kDouble);
    EXPECT_LE((u - v).abs().max().item<double>(), tolerance * (1 + v.abs().max().item<double>())) << x.tensors[i].first;
  }
}

void expect_close_losses(const std::string& a, const std::string& b, double tolerance) {
  const std::vector<double> x = step_losses(a), y = step_losses(b);
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], y[i], tolerance * y[i]) << "step " << i + 1;
}

// A Pixelfly Mixer on the GPU with AdamW, clipping and a changing learning rate: in float32 the
// graphed run follows the eager one (the same kernels; only the order of some sums may differ),
// and a graphed run stopped after 5 steps (2 eager, 3 replayed) and resumed follows an
// uninterrupted graphed run (the host's step counts advance with the replays); in bfloat16 the
// graphed run follows the eager one as closely as bfloat16 allows, and learns.
TEST(Trainer, CudaGraphStepsTrainAsEagerSteps) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device on this machine";
  const std::vector<std::string> fp32 = {"run.device=cuda", "train.precision=fp32", "model.sparsity=pixelfly",
                                         "data.augment=false", "train.grad_clip=1", "schedule.warmup_epochs=1"};
  auto with = [](std::vector<std::string> base, const std::vector<std::string>& more) {
    base.insert(base.end(), more.begin(), more.end());
    return base;
  };
  TempDir dir;
  const std::string eager = dir / "eager", graphed = dir / "graphed", split = dir / "split";
  ASSERT_TRUE(train(image_config(eager, fp32)).finished);
  ASSERT_TRUE(train(image_config(graphed, with(fp32, {"train.cuda_graph=true"}))).finished);
  expect_close_losses(graphed, eager, 1e-4);
  const std::string last = "/checkpoints/step_00000016/model.safetensors";
  expect_close_weights(graphed + last, eager + last, 1e-4);

  EXPECT_FALSE(train(image_config(split, with(fp32, {"train.cuda_graph=true", "train.max_steps=5"}))).finished);
  EXPECT_TRUE(train(image_config(split, with(fp32, {"train.cuda_graph=true"})), /*resume=*/true).finished);
  expect_close_losses(split, graphed, 1e-4);
  expect_close_weights(split + last, graphed + last, 1e-4);

  std::vector<std::string> bf16 = fp32;
  bf16[1] = "train.precision=bf16";
  const std::string bf16_eager = dir / "bf16_eager", bf16_graphed = dir / "bf16_graphed";
  ASSERT_TRUE(train(image_config(bf16_eager, bf16)).finished);
  ASSERT_TRUE(train(image_config(bf16_graphed, with(bf16, {"train.cuda_graph=true"}))).finished);
  expect_close_losses(bf16_graphed, bf16_eager, 1e-2);
  const std::vector<double> losses = step_losses(bf16_graphed);
  ASSERT_EQ(losses.size(), 16u);
  EXPECT_LT(losses.back(), losses.front());
}

}  // namespace
}  // namespace pixelfly::train
