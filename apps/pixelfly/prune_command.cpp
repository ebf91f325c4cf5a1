// pixelfly prune: one-shot compression of a trained model to several sparsities (or N:M), with
// optional batch-norm recalibration: a table, prune.json and prune.png in the output directory,
// and optionally each compressed model as a .safetensors file.
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "commands.h"
#include "run_config.h"
#include "pixelfly/compress/batch_norm_recalibration.h"
#include "pixelfly/compress/compressor_spec.h"
#include "pixelfly/compress/one_shot_sweep.h"
#include "pixelfly/io/atomic_file.h"
#include "pixelfly/io/file_system.h"
#include "pixelfly/train/checkpoint.h"
#include "pixelfly/train/session.h"

namespace pixelfly::cli {
namespace {

struct PruneArgs {
  std::string checkpoint;
  std::string compressor = "global";
  std::vector<double> sparsities = {0.5, 0.7, 0.8, 0.9};
  std::string nm = "2:4";
  int64_t block = 32;
  bool recalibrate = false;
  int64_t recalibration_images = 1000, recalibration_batches = 100, recalibration_batch_size = 128;
  bool keep_first_dense = false, keep_last_dense = false;
  bool save_models = false;
  std::string out_dir;
  std::vector<std::string> overrides;
};

std::string compressor_spec(const PruneArgs& a, double sparsity) {
  std::ostringstream spec;
  if (a.compressor == "nm") {
    spec << "nm:" << a.nm;
  } else if (a.compressor == "block") {
    spec << "block:" << sparsity << ":" << a.block;
  } else {
    spec << a.compressor << ":" << sparsity;
  }
  return spec.str();
}

// N:M pruning has one level, 1 - N/M.
std::vector<double> levels(const PruneArgs& a) {
  if (a.compressor != "nm") return a.sparsities;
  static const std::regex pattern(R"((\d+):(\d+))");
  std::smatch m;
  if (!std::regex_match(a.nm, m, pattern)) {
    throw std::invalid_argument("--nm '" + a.nm + "' must look like N:M, e.g. 2:4");
  }
  const double n = std::stod(m[1]), mm = std::stod(m[2]);
  if (mm <= 0 || n > mm) throw std::invalid_argument("--nm '" + a.nm + "': N must be <= M and M > 0");
  return {1.0 - n / mm};
}

void run_prune(const PruneArgs& a) {
  const std::string run_dir = run_dir_of(a.checkpoint);
  train::Session session = train::open_session(load_run_config(run_dir, a.overrides), std::cerr);
  torch::nn::Module& model = *session.model.module;
  train::load_model_weights(a.checkpoint, model);
  const std::string out_dir = a.out_dir.empty() ? run_dir + "/prune_" + a.compressor : a.out_dir;

  compress::CompressionPolicy policy;
  policy.keep_first_dense = a.keep_first_dense;
  policy.keep_last_dense = a.keep_last_dense;
  const std::vector<compress::NamedWeight> weights = compress::compressible_weights(model, policy);
  auto evaluate = [&] { return train::evaluate(session).accuracy; };
  std::function<void()> recalibrate;
  if (a.recalibrate) {
    compress::RecalibrationOptions options;
    options.subset_size = std::min(a.recalibration_images, session.data->training_examples());
    options.batches = a.recalibration_batches;
    options.batch_size = std::min(a.recalibration_batch_size, options.subset_size);
    options.seed = session.config.seed;
    recalibrate = [&, options] {
      compress::recalibrate_batch_norm(
          model, session.data->training_examples(),
          [&](const std::vector<int64_t>& indices) { return session.data->training_inputs(indices); },
          [&](const at::Tensor& inputs) {
            train::autocast_forward(session.bf16_autocast, [&] { return session.model.forward(inputs.to(session.device)); });
          },
          options);
    };
  }
  std::function<void(const compress::SweepRow&)> save;
  if (a.save_models) {
    save = [&](const compress::SweepRow& row) {
      io::make_directories(out_dir);
      char name[64];
      std::snprintf(name, sizeof name, "/model_sparsity_%.2f.safetensors", row.reached_sparsity);
      train::save_model_weights(out_dir + name, model,
                                {{"compressor", row.compressor}, {"sparsity", std::to_string(row.reached_sparsity)}});
    };
  }
  const std::vector<compress::SweepRow> rows = compress::one_shot_sweep(
      model, weights, [&](double s) { return compress::parse_compressor(compressor_spec(a, s)); }, levels(a),
      evaluate, recalibrate, save);
  std::cout << "dense accuracy: " << std::fixed << std::setprecision(2) << 100.0 * evaluate() << " %\n"
            << std::defaultfloat << compress::sweep_table(rows);
  io::make_directories(out_dir);  // only now: a failed sweep leaves no empty directory behind
  io::write_file_atomically(out_dir + "/prune.json", compress::sweep_json(rows));
  const bool plotted = compress::write_sweep_plot(rows, out_dir + "/prune.png");
  std::cout << "wrote " << out_dir << "/prune.json" << (plotted ? " and prune.png" : " (no gnuplot: no plot)") << "\n";
}

}  // namespace

void add_prune_command(CLI::App& app) {
  auto a = std::make_shared<PruneArgs>();
  CLI::App* command = app.add_subcommand("prune", "Compress a trained model one shot to several sparsities and evaluate each");
  command->add_option("checkpoint", a->checkpoint, "A run directory, a checkpoint, or a .safetensors file in a run")
      ->required();
  command->add_option("--compressor", a->compressor, "global | uniform | nm | block")
      ->check(CLI::IsMember({"global", "uniform", "nm", "block"}))
      ->capture_default_str();
  command->add_option("--sparsities", a->sparsities, "Comma-separated sparsities in [0, 1)")
      ->delimiter(',')
      ->check(CLI::Range(0.0, 0.999999))
      ->capture_default_str();
  command->add_option("--nm", a->nm, "N:M pattern for --compressor nm")->capture_default_str();
  command->add_option("--block", a->block, "Tile size for --compressor block")->check(CLI::PositiveNumber)->capture_default_str();
  command->add_flag("--bn-recalibrate", a->recalibrate, "Recalibrate batch-norm statistics after compressing");
  command->add_option("--recalibration-images", a->recalibration_images, "Size of the fixed training subset")
      ->check(CLI::PositiveNumber)->capture_default_str();
  command->add_option("--recalibration-batches", a->recalibration_batches, "Batches run for recalibration")
      ->check(CLI::PositiveNumber)->capture_default_str();
  command->add_flag("--keep-first-dense", a->keep_first_dense, "Never compress the first weight");
  command->add_flag("--keep-last-dense", a->keep_last_dense, "Never compress the last weight (the classifier)");
  command->add_flag("--save-models", a->save_models, "Save each compressed model as .safetensors");
  command->add_option("--out", a->out_dir, "Output directory (default: RUN_DIR/prune_<compressor>)");
  command->add_option("--set", a->overrides, "Override a key of the run's config")->type_name("KEY=VALUE");
  command->footer(
      "Examples:\n"
      "  pixelfly prune runs/cram --sparsities 0.5,0.7,0.8,0.9 --bn-recalibrate\n"
      "  pixelfly prune runs/cram --compressor nm --nm 2:4");
  command->callback([a] { run_prune(*a); });
}

}  // namespace pixelfly::cli
