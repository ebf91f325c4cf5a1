// pixelfly bench: the training-step time of a model, dense against Pixelfly, on this machine,
// with parameters and FLOPs per step: the speed-up to expect before committing hours to a run.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "run_config.h"
#include "pixelfly/train/config.h"
#include "pixelfly/train/session.h"
#include "pixelfly/train/train_step.h"

namespace pixelfly::cli {
namespace {

struct BenchArgs {
  ConfigArgs config;
  int64_t warmup = 3, steps = 20;
};

struct BenchRow {
  std::string variant;
  int64_t parameters = 0;
  double flops_per_step = 0, median_ms = 0;
};

BenchRow bench_variant(const BenchArgs& a, const std::string& sparsity) {
  std::vector<std::string> overrides = a.config.overrides;
  overrides.push_back("model.sparsity=" + sparsity);
  overrides.push_back("data.prefetch=0");
  train::Session s = train::open_session(train::load_config(a.config.config_file, overrides), std::cerr);
  train::Optimizers optimizers = train::make_optimizers(*s.model.module, s.config);
  BenchRow row;
  row.variant = sparsity;
  for (const at::Tensor& p : s.model.module->parameters()) row.parameters += p.numel();
  row.flops_per_step = train::training_flops_per_step(s, s.config.batch_size);
  s.data->start_epoch(0, 0);
  const std::optional<train::Batch> batch = s.data->next();
  if (!batch) throw std::invalid_argument("the data gives no training batch of data.batch_size");
  s.model.module->train();
  std::vector<double> ms;
  for (int64_t i = 0; i < a.warmup + a.steps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    train::train_step(s, optimizers, *batch);  // synchronises with the device
    if (i >= a.warmup) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  row.median_ms = ms[ms.size() / 2];
  return row;
}

void run_bench(const BenchArgs& a) {
  const BenchRow dense = bench_variant(a, "dense");
  const BenchRow sparse = bench_variant(a, "pixelfly");
  std::printf("%-10s %12s %14s %12s %10s %12s\n", "model", "parameters", "GFLOP/step", "step ms", "speed-up",
              "GFLOP/s");
  for (const BenchRow& r : {dense, sparse}) {
    std::printf("%-10s %12lld %14.3f %12.2f %9.2fx %12.1f\n", r.variant.c_str(), static_cast<long long>(r.parameters),
                r.flops_per_step / 1e9, r.median_ms, dense.median_ms / r.median_ms,
                r.flops_per_step / 1e6 / r.median_ms);
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* command = app.add_subcommand(
      "bench", "Time a training step of the configured model, dense against Pixelfly (median after warm-up)");
  add_config_options(*command, a->config);
  command->add_option("--warmup", a->warmup, "Untimed steps first")->check(CLI::NonNegativeNumber)->capture_default_str();
  command->add_option("--steps", a->steps, "Timed steps")->check(CLI::PositiveNumber)->capture_default_str();
  command->footer(
      "Examples:\n"
      "  pixelfly bench --config configs/mixer_fmnist.json\n"
      "  pixelfly bench --set model.preset=gpt2-medium --set data.name=synthetic-text --set data.context=1024 "
      "--set data.batch_size=8");
  command->callback([a] { run_bench(*a); });
}

}  // namespace pixelfly::cli
