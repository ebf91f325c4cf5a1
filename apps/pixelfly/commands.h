// The pixelfly subcommands: each file adds one subcommand to the CLI11 app and runs it.
#pragma once

#include <CLI/CLI.hpp>

namespace pixelfly::cli {

void add_mask_command(CLI::App& app);
void add_plan_command(CLI::App& app);
// `exit_code` receives the command's status (a run stopped by a non-finite loss is 1).
void add_train_command(CLI::App& app, int& exit_code);
void add_eval_command(CLI::App& app);
void add_prune_command(CLI::App& app);
void add_bench_command(CLI::App& app);

}  // namespace pixelfly::cli
