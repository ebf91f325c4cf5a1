// The training loop: schedule, optimiser steps, evaluation, metrics, checkpoints, resume.
#include "pixelfly/train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <sstream>
#include <stdexcept>

#include "pixelfly/io/atomic_file.h"
#include "pixelfly/io/file_system.h"
#include "pixelfly/train/checkpoint.h"
#include "pixelfly/train/graphed_train_step.h"
#include "pixelfly/train/lr_schedule.h"
#include "pixelfly/train/metrics_log.h"
#include "pixelfly/train/optimizer_factory.h"
#include "pixelfly/train/plots.h"
#include "pixelfly/train/progress.h"
#include "pixelfly/train/train_step.h"
#include "pixelfly/train/session.h"

namespace pixelfly::train {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::string to_hex(const at::Tensor& bytes) {
  const at::Tensor b = bytes.contiguous();
  const uint8_t* data = b.data_ptr<uint8_t>();
  std::ostringstream hex;
  for (int64_t i = 0; i < b.numel(); ++i) hex << std::hex << std::setw(2) << std::setfill('0') << int(data[i]);
  return hex.str();
}

at::Tensor from_hex(const std::string& hex) {
  TORCH_CHECK(hex.size() % 2 == 0, "checkpoint: the saved random generator state is malformed");
  at::Tensor bytes = at::empty({static_cast<int64_t>(hex.size() / 2)}, at::kByte);
  uint8_t* data = bytes.data_ptr<uint8_t>();
  for (size_t i = 0; i < hex.size(); i += 2) data[i / 2] = static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return bytes;
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

nlohmann::json TrainSummary::to_json() const {
  nlohmann::json j = {{"finished", finished},
                      {"stop_reason", stop_reason},
                      {"steps", steps},
                      {"epochs", epochs},
                      {"eval_loss", final_loss},
                      {"eval_accuracy", final_accuracy},
                      {"median_step_ms", median_step_ms},
                      {"parameters", parameters},
                      {"train_flops_per_step", train_flops_per_step},
                      {"train_seconds", train_seconds},
                      {"device", device}};
  if (bits_per_byte > 0) j["bits_per_byte"] = bits_per_byte;
  return j;
}

TrainSummary train_model(const nlohmann::json& config, const TrainOptions& options, std::ostream& out) {
  Session s = open_session(config, out);
  const TrainConfig& c = s.config;
  if (c.optimizer == "cram" && c.grad_clip > 0) {
    throw std::invalid_argument("train.grad_clip = " + std::to_string(c.grad_clip) +
                                " is not supported with optim.name = cram (the base step happens inside the CrAM "
                                "step); set train.grad_clip=0");
  }
  const std::string run_dir = c.run_dir;
  io::make_directories(run_dir);
  const bool has_checkpoint = io::is_file(run_dir + "/checkpoints/latest");
  if (!options.resume && has_checkpoint) {
    throw std::invalid_argument("run directory '" + run_dir +
                                "' already holds a run with checkpoints; pass --resume to continue it or choose "
                                "another run.dir");
  }
  io::write_file_atomically(run_dir + "/config.json", config.dump(2) + "\n");

  torch::nn::Module& module = *s.model.module;
  Optimizers optimizers = make_optimizers(module, c);
  torch::optim::Optimizer& optimizer = *optimizers.base;
  const std::unique_ptr<GraphedTrainStep> graphed =
      c.cuda_graph ? std::make_unique<GraphedTrainStep>(s, optimizers) : nullptr;

  const int64_t steps_per_epoch = s.data->batches_per_epoch();
  TORCH_CHECK(steps_per_epoch > 0, "the training split gives no batch of data.batch_size = ", c.batch_size);
  LrSchedule schedule;
  schedule.peak = c.lr;
  schedule.min_ratio = c.min_lr_ratio;
  schedule.warmup_steps = c.warmup_epochs * steps_per_epoch;
  schedule.total_steps = c.epochs * steps_per_epoch;

  int64_t step = 0, epoch = 0, batch_in_epoch = 0;
  // The epoch's training-loss sum so far: saved with a mid-epoch checkpoint so that a resumed
  // run reports the same epoch mean.
  double loss_sum = 0;
  int64_t loss_count = 0;
  if (options.resume) {
    if (!has_checkpoint) {
      throw std::invalid_argument("--resume: run directory '" + run_dir + "' has no checkpoint to resume from");
    }
    const std::string checkpoint = latest_checkpoint(run_dir);
    const nlohmann::json state = load_checkpoint(checkpoint, module, &optimizer);
    step = state.at("step").get<int64_t>();
    epoch = state.at("epoch").get<int64_t>();
    batch_in_epoch = state.at("batch_in_epoch").get<int64_t>();
    loss_sum = state.value("epoch_loss_sum", 0.0);
    loss_count = state.value("epoch_loss_count", int64_t{0});
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    generator.set_state(from_hex(state.at("cpu_generator").get<std::string>()));
    if (optimizers.cram) optimizers.cram->set_generator_state(state.at("cram_generator").get<std::string>());
    if (epoch >= c.epochs) {
      throw std::invalid_argument("--resume: the run in '" + run_dir + "' has already finished its " +
                                  std::to_string(epoch) + " epochs; raise schedule.epochs to train on");
    }
    out << "resumed from " << checkpoint << " at step " << step << "\n";
  }
  MetricsLog metrics(run_dir + "/metrics.jsonl", step);

  TrainSummary summary;
  summary.device = s.device.str();
  summary.parameters = models::parameter_count(module);
  summary.train_flops_per_step = training_flops_per_step(s, c.batch_size);

  auto save = [&](int64_t next_epoch, int64_t next_batch, double epoch_loss_sum, int64_t epoch_loss_count) {
    nlohmann::json state = {{"step", step},
                            {"epoch", next_epoch},
                            {"batch_in_epoch", next_batch},
                            {"epoch_loss_sum", epoch_loss_sum},
                            {"epoch_loss_count", epoch_loss_count},
                            {"cpu_generator", to_hex(at::detail::getDefaultCPUGenerator().get_state())}};
    if (optimizers.cram) state["cram_generator"] = optimizers.cram->generator_state();
    return save_checkpoint(run_dir, step, module, &optimizer, state, static_cast<int>(c.keep_checkpoints));
  };

  const int64_t total_steps = schedule.total_steps;
  Progress progress(out, options.terminal, total_steps, c.log_every, step);
  std::vector<double> step_ms;
  const Clock::time_point run_start = Clock::now();
  // Ends the run (finished or stopped early) after `epochs_done` epochs: summary.json says which.
  auto finish = [&](int64_t epochs_done) {
    progress.finish();
    summary.finished = summary.stop_reason.empty();
    summary.steps = step;
    summary.epochs = epochs_done;
    summary.median_step_ms = median(step_ms);
    summary.train_seconds = seconds_since(run_start);
    io::write_file_atomically(run_dir + "/summary.json", summary.to_json().dump(2) + "\n");
    return summary;
  };
  module.train();
  for (; epoch < c.epochs; ++epoch, batch_in_epoch = 0, loss_sum = 0, loss_count = 0) {
    const Clock::time_point epoch_start = Clock::now();
    s.data->start_epoch(epoch, batch_in_epoch);
    while (auto batch = s.data->next()) {
      const Clock::time_point step_start = Clock::now();
      const double lr = schedule.at(step);
      set_learning_rate(optimizer, lr);
      const double loss = graphed ? graphed->run(*batch) : train_step(s, optimizers, *batch);
      if (!std::isfinite(loss)) {
        summary.stop_reason = "non-finite loss (" + std::to_string(loss) + ") at step " + std::to_string(step + 1);
        metrics.write({{"kind", "stop"}, {"step", step + 1}, {"reason", summary.stop_reason}});
        progress.finish();
        out << "stopped: " << summary.stop_reason << "; the last good checkpoint is kept in " << run_dir
            << "/checkpoints\n";
        return finish(epoch);
      }
      step_ms.push_back(1e3 * seconds_since(step_start));
      ++step;
      ++batch_in_epoch;
      loss_sum += loss;
      ++loss_count;
      if (step % c.log_every == 0) {
        metrics.write({{"kind", "step"}, {"step", step}, {"epoch", epoch + 1}, {"loss", loss}, {"lr", lr},
                       {"step_ms", step_ms.back()}});
      }
      progress.update(step, loss, lr);
      const bool stop_now = c.max_steps > 0 && step >= c.max_steps;
      if ((c.checkpoint_every > 0 && step % c.checkpoint_every == 0) || stop_now) {
        if (batch_in_epoch < steps_per_epoch) save(epoch, batch_in_epoch, loss_sum, loss_count);
      }
      if (stop_now && batch_in_epoch < steps_per_epoch) {
        summary.stop_reason = "train.max_steps = " + std::to_string(c.max_steps) + " reached";
        progress.finish();
        out << "stopped after step " << step << " (train.max_steps); continue with: pixelfly train --resume "
            << run_dir << " --set train.max_steps=0\n";
        return finish(epoch);
      }
    }
    const Evaluation e = evaluate(s);
    nlohmann::json record = {{"kind", "epoch"},
                             {"epoch", epoch + 1},
                             {"step", step},
                             {"train_loss", loss_count > 0 ? loss_sum / static_cast<double>(loss_count) : 0.0},
                             {"eval_loss", e.loss},
                             {"eval_accuracy", e.accuracy},
                             {"epoch_s", seconds_since(epoch_start)}};
    if (s.model.task == models::Task::LanguageModelling) record["bits_per_byte"] = e.bits_per_byte;
    metrics.write(record);
    std::ostringstream line;
    line << "epoch " << epoch + 1 << "/" << c.epochs << ": train loss " << std::fixed << std::setprecision(4)
         << record["train_loss"].get<double>() << ", eval loss " << e.loss << ", eval accuracy "
         << std::setprecision(2) << 100.0 * e.accuracy << " %";
    if (s.model.task == models::Task::LanguageModelling) line << ", " << std::setprecision(3) << e.bits_per_byte << " bits/byte";
    line << " (" << std::setprecision(1) << seconds_since(epoch_start) << " s)";
    progress.message(line.str());
    save(epoch + 1, 0, 0.0, 0);
    if (c.plots) draw_training_curves(run_dir);
    summary.final_loss = e.loss;
    summary.final_accuracy = e.accuracy;
    summary.bits_per_byte = e.bits_per_byte;
    if (c.max_steps > 0 && step >= c.max_steps && epoch + 1 < c.epochs) {
      summary.stop_reason = "train.max_steps = " + std::to_string(c.max_steps) + " reached";
      return finish(epoch + 1);
    }
  }
  return finish(c.epochs);
}

}  // namespace pixelfly::train
