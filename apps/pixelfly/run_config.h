// Command-line pieces train, eval, prune and bench share: the --config/--set options and
// finding a run's configuration from a run or checkpoint directory.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace pixelfly::cli {

struct ConfigArgs {
  std::string config_file;
  std::vector<std::string> overrides;
};

// Adds --config FILE, --set KEY=VALUE (repeatable) and --device DEVICE to `command`.
void add_config_options(CLI::App& command, ConfigArgs& args);

// The run directory a run, checkpoints or checkpoint directory belongs to (the directory holding
// config.json). Throws std::invalid_argument when none is found.
std::string run_dir_of(const std::string& path);

// The configuration of an existing run (its config.json) with `overrides` applied.
nlohmann::json load_run_config(const std::string& run_dir, const std::vector<std::string>& overrides);

// True when standard error is a terminal (progress bars are drawn there).
bool stderr_is_terminal();

}  // namespace pixelfly::cli
