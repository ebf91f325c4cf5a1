// pixelfly plan: choose per-layer flat butterfly (n, k, b) and low-rank rank for a density
// budget, and print the achieved densities and savings.
#include <iostream>
#include <memory>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "commands.h"
#include "pixelfly/models/model_zoo.h"
#include "pixelfly/pattern/budget_planner.h"

namespace pixelfly::cli {
namespace {

struct PlanArgs {
  std::string model;                   // a preset name
  std::vector<std::string> layers;     // NAME:TYPE:OUTxIN
  std::vector<std::string> densities;  // TYPE=DENSITY
  double low_rank_share = PlannerOptions{}.low_rank_share;
  std::vector<int64_t> block_sizes = PlannerOptions{}.block_sizes;
  bool blocks_given = false;
};

LayerShape parse_layer(const std::string& spec) {
  static const std::regex pattern(R"(([^:]+):([^:]+):(\d+)x(\d+))");
  std::smatch m;
  if (!std::regex_match(spec, m, pattern)) {
    throw std::invalid_argument("--layer '" + spec + "' must look like NAME:TYPE:OUTxIN, e.g. fc1:mlp:3072x768");
  }
  return {m[1], m[2], std::stoll(m[3]), std::stoll(m[4])};
}

std::pair<std::string, double> parse_density(const std::string& spec) {
  const auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw std::invalid_argument("--density '" + spec + "' must look like TYPE=DENSITY, e.g. mlp=0.25");
  }
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(spec.substr(eq + 1), &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != spec.size() - eq - 1) {
    throw std::invalid_argument("--density '" + spec + "': '" + spec.substr(eq + 1) + "' is not a number");
  }
  return {spec.substr(0, eq), value};
}

void run_plan(const PlanArgs& args) {
  std::vector<LayerShape> layers;
  std::vector<int64_t> block_sizes = args.block_sizes;
  if (!args.model.empty()) {
    models::SparsifiableLayers preset = models::preset_sparsifiable_layers(args.model);
    layers = std::move(preset.layers);
    if (!args.blocks_given) block_sizes = preset.block_sizes;
  }
  for (const std::string& spec : args.layers) layers.push_back(parse_layer(spec));
  if (layers.empty()) throw std::invalid_argument("plan: give --model NAME or at least one --layer");
  PlannerOptions options;
  for (const std::string& spec : args.densities) options.density_by_type.insert(parse_density(spec));
  options.low_rank_share = args.low_rank_share;
  options.block_sizes = block_sizes;
  std::cout << format_plan_table(plan_budget(layers, options));
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* cmd = app.add_subcommand("plan", "Plan per-layer Pixelfly settings for a density budget");
  cmd->add_option("--model", args->model,
                  "A Mixer, ViT or GPT-2 preset (mixer-b16, vit-s16, gpt2-medium, ...): its layers of type mlp "
                  "(and attention for ViT and GPT-2)");
  cmd->add_option("--layer", args->layers, "A layer NAME:TYPE:OUTxIN (repeat for each layer)");
  cmd->add_option("--density", args->densities, "Target total density per type, TYPE=DENSITY (repeatable)")
      ->required();
  cmd->add_option("--low-rank-share", args->low_rank_share, "Share of each budget given to the low-rank term")
      ->capture_default_str();
  CLI::Option* blocks =
      cmd->add_option("--blocks", args->block_sizes, "Block sizes to choose from (default: the preset's, else these)")
          ->delimiter(',')
          ->capture_default_str();
  cmd->footer(
      "Examples:\n"
      "  pixelfly plan --model mixer-b16 --density mlp=0.25\n"
      "  pixelfly plan --model gpt2-medium --density mlp=0.25 --density attention=0.5\n"
      "  pixelfly plan --layer fc1:mlp:3072x768 --layer fc2:mlp:768x3072 --density mlp=0.1");
  cmd->callback([args, blocks] {
    args->blocks_given = blocks->count() > 0;
    run_plan(*args);
  });
}

}  // namespace pixelfly::cli
