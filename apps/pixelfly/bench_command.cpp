// pixelfly bench: the training-step time of a model in several variants (by default dense against
// Pixelfly; any configuration overrides, e.g. SGD against CrAM) on this machine, with parameters
// and FLOPs per step: the speed-up to expect before committing hours to a run. With --profile,
// one more step of each variant runs under the profiler (train/step_profile.h).
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include "commands.h"
#include "run_config.h"
#include "pixelfly/io/file_system.h"
#include "pixelfly/train/config.h"
#include "pixelfly/train/graphed_train_step.h"
#include "pixelfly/train/session.h"
#include "pixelfly/train/step_profile.h"
#include "pixelfly/train/train_step.h"

namespace pixelfly::cli {
namespace {

struct BenchArgs {
  ConfigArgs config;
  std::vector<std::string> variants = {"dense:model.sparsity=dense", "pixelfly:model.sparsity=pixelfly"};
  int64_t warmup = 3, steps = 20;
  std::string profile_dir;  // empty: no profile
};

struct Variant {
  std::string name;
  std::vector<std::string> overrides;
};

// "NAME:KEY=VALUE;KEY=VALUE"
Variant parse_variant(const std::string& spec) {
  const auto colon = spec.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == spec.size()) {
    throw std::invalid_argument("--variant '" + spec + "' must look like NAME:KEY=VALUE[;KEY=VALUE...], e.g. cram:optim.name=cram");
  }
  Variant v{spec.substr(0, colon), {}};
  std::stringstream rest(spec.substr(colon + 1));
  for (std::string item; std::getline(rest, item, ';');) {
    if (!item.empty()) v.overrides.push_back(item);
  }
  return v;
}

struct BenchRow {
  std::string variant;
  int64_t parameters = 0;
  double flops_per_step = 0, median_ms = 0;
  std::string profile;  // the profiled step's summary, with --profile
};

BenchRow bench_variant(const BenchArgs& a, const Variant& variant) {
  std::vector<std::string> overrides = a.config.overrides;
  overrides.insert(overrides.end(), variant.overrides.begin(), variant.overrides.end());
  overrides.push_back("data.prefetch=0");
  train::Session s = train::open_session(train::load_config(a.config.config_file, overrides), std::cerr);
  train::Optimizers optimizers = train::make_optimizers(*s.model.module, s.config);
  BenchRow row;
  row.variant = variant.name;
  row.parameters = models::parameter_count(*s.model.module);
  row.flops_per_step = train::training_flops_per_step(s, s.config.batch_size);
  s.data->start_epoch(0, 0);
  const std::optional<train::Batch> batch = s.data->next();
  if (!batch) throw std::invalid_argument("the data gives no training batch of data.batch_size");
  s.model.module->train();
  const std::unique_ptr<train::GraphedTrainStep> graphed =
      s.config.cuda_graph ? std::make_unique<train::GraphedTrainStep>(s, optimizers) : nullptr;
  auto step = [&] { return graphed ? graphed->run(*batch) : train::train_step(s, optimizers, *batch); };
  std::vector<double> ms;
  for (int64_t i = 0; i < a.warmup + a.steps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    step();  // synchronises with the device
    if (i >= a.warmup) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  row.median_ms = ms[ms.size() / 2];
  if (!a.profile_dir.empty()) {
    const std::string trace = a.profile_dir + "/" + variant.name + "-step.json";
    row.profile = "trace " + trace + "\n" +
                  train::format_step_profile(train::profile_step([&] { step(); },
                                                                 s.device.is_cuda(), trace));
  }
  return row;
}

void run_bench(const BenchArgs& a) {
  if (!a.profile_dir.empty()) io::make_directories(a.profile_dir);
  std::vector<BenchRow> rows;
  for (const std::string& spec : a.variants) rows.push_back(bench_variant(a, parse_variant(spec)));
  std::printf("%-12s %12s %14s %12s %12s %12s\n", "variant", "parameters", "GFLOP/step", "step ms",
              ("vs " + rows.front().variant).c_str(), "GFLOP/s");
  for (const BenchRow& r : rows) {
    std::printf("%-12s %12lld %14.3f %12.2f %11.2fx %12.1f\n", r.variant.c_str(), static_cast<long long>(r.parameters),
                r.flops_per_step / 1e9, r.median_ms, rows.front().median_ms / r.median_ms,
                r.flops_per_step / 1e6 / r.median_ms);
  }
  for (const BenchRow& r : rows) {
    if (!r.profile.empty()) std::printf("\nprofile of one %s step, %s", r.variant.c_str(), r.profile.c_str());
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* command = app.add_subcommand(
      "bench", "Time a training step of the configured model, dense against Pixelfly (median after warm-up)");
  add_config_options(*command, a->config);
  command->add_option("--variant", a->variants,
                      "NAME:KEY=VALUE[;KEY=VALUE...], repeatable; the first is the baseline (default: dense and pixelfly)")
      ->capture_default_str();
  command->add_option("--warmup", a->warmup, "Untimed steps first")->check(CLI::NonNegativeNumber)->capture_default_str();
  command->add_option("--steps", a->steps, "Timed steps")->check(CLI::PositiveNumber)->capture_default_str();
  command->add_option("--profile", a->profile_dir,
                      "Directory: profile one more step of each variant, write its trace there (VARIANT-step.json) "
                      "and print where the step's time goes");
  command->footer(
      "Examples:\n"
      "  pixelfly bench --config configs/mixer_fmnist.json\n"
      "  pixelfly bench --set model.preset=gpt2-medium --set data.name=synthetic-text --set data.context=1024 "
      "--set data.batch_size=8\n"
      "  pixelfly bench --config configs/resnet20_fmnist_cram.json --variant sgd:optim.name=sgd --variant "
      "cram:optim.name=cram\n"
      "  pixelfly bench --config configs/mixer_fmnist.json --profile runs/profile");
  command->callback([a] { run_bench(*a); });
}

}  // namespace pixelfly::cli
