// pixelfly train: train a model from a configuration (or resume a run), printing progress,
// one line per epoch and a closing summary.
#include <iomanip>
#include <iostream>
#include <stdexcept>

#include "commands.h"
#include "run_config.h"
#include "pixelfly/train/config.h"
#include "pixelfly/train/trainer.h"

namespace pixelfly::cli {
namespace {

struct TrainArgs {
  ConfigArgs config;
  std::string resume;
};

int run_train(const TrainArgs& args) {
  nlohmann::json config;
  if (!args.resume.empty()) {
    if (!args.config.config_file.empty()) {
      throw std::invalid_argument("--resume continues a run with its own config.json; drop --config");
    }
    const std::string run_dir = run_dir_of(args.resume);
    config = load_run_config(run_dir, args.config.overrides);
    config["run"]["dir"] = run_dir;
  } else {
    config = train::load_config(args.config.config_file, args.config.overrides);
  }
  train::TrainOptions options;
  options.resume = !args.resume.empty();
  options.terminal = stderr_is_terminal();
  const train::TrainSummary s = train::train_model(config, options, std::cerr);
  std::cout << std::fixed << std::setprecision(2) << "run " << config["run"]["dir"].get<std::string>() << ": "
            << s.steps << " steps, " << s.epochs << " epochs";
  if (s.final_loss > 0) {  // evaluated in this run
    std::cout << ", eval accuracy " << 100.0 * s.final_accuracy << " %, eval loss " << std::setprecision(4)
              << s.final_loss;
  } else {
    std::cout << " (no evaluation yet)";
  }
  std::cout << ", median step " << std::setprecision(2) << s.median_step_ms << " ms, " << s.parameters
            << " parameters on " << s.device << "\n";
  if (!s.finished && s.stop_reason.rfind("non-finite", 0) == 0) {
    std::cerr << "pixelfly: error: training stopped: " << s.stop_reason << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

void add_train_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* command = app.add_subcommand("train", "Train a model (dense, Pixelfly, or with CrAM)");
  add_config_options(*command, args->config);
  command->add_option("--resume", args->resume, "Continue the run in this directory from its latest checkpoint")
      ->type_name("RUN_DIR");
  command->footer(
      "Examples:\n"
      "  pixelfly train --config configs/mixer_fmnist.json --set model.sparsity=pixelfly\n"
      "  pixelfly train --config configs/resnet20_fmnist_cram.json --set run.dir=runs/cram\n"
      "  pixelfly train --resume runs/cram");
  command->callback([args, &exit_code] { exit_code = run_train(*args); });
}

}  // namespace pixelfly::cli
