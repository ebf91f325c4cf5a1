// The pixelfly subcommands: each file adds one subcommand to the CLI11 app and runs it.
#pragma once

#include <CLI/CLI.hpp>

namespace pixelfly::cli {

void add_mask_command(CLI::App& app);
void add_plan_command(CLI::App& app);

}  // namespace pixelfly::cli
