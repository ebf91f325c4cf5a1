// pixelfly eval: evaluate a trained model (a run directory or a checkpoint) on its test or
// validation split.
#include <iomanip>
#include <iostream>

#include "commands.h"
#include "run_config.h"
#include "pixelfly/train/checkpoint.h"
#include "pixelfly/train/session.h"

namespace pixelfly::cli {
namespace {

struct EvalArgs {
  std::string checkpoint;
  std::vector<std::string> overrides;
};

void run_eval(const EvalArgs& args) {
  const std::string run_dir = run_dir_of(args.checkpoint);
  train::Session session = train::open_session(load_run_config(run_dir, args.overrides), std::cerr);
  train::load_model_weights(args.checkpoint, *session.model.module);
  const train::Evaluation e = train::evaluate(session);
  std::cout << std::fixed << std::setprecision(2) << "accuracy " << 100.0 * e.accuracy << " %, loss "
            << std::setprecision(4) << e.loss;
  if (e.bits_per_byte > 0) std::cout << ", " << std::setprecision(3) << e.bits_per_byte << " bits/byte";
  std::cout << " (" << e.examples << (e.bits_per_byte > 0 ? " bytes" : " images") << ")\n";
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* command = app.add_subcommand("eval", "Evaluate a trained model on its test or validation split");
  command->add_option("checkpoint", args->checkpoint, "A run directory, its checkpoints directory, a checkpoint, or a .safetensors file in a run")
      ->required();
  command->add_option("--set", args->overrides, "Override a key of the run's config, e.g. --set data.eval_batches=10")
      ->type_name("KEY=VALUE");
  command->footer("Example:\n  pixelfly eval runs/mixer_fmnist_pixelfly");
  command->callback([args] { run_eval(*args); });
}

}  // namespace pixelfly::cli
