// pixelfly: command-line entry point. Errors become one line on stderr and exit code 1.
#include <c10/util/Exception.h>

#include <iostream>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"pixelfly: Pixelated Butterfly sparse training and the CrAM optimiser on LibTorch"};
  app.require_subcommand(1);
  int exit_code = 0;
  pixelfly::cli::add_train_command(app, exit_code);
  pixelfly::cli::add_eval_command(app);
  pixelfly::cli::add_prune_command(app);
  pixelfly::cli::add_mask_command(app);
  pixelfly::cli::add_plan_command(app);
  pixelfly::cli::add_bench_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const c10::Error& e) {
    std::cerr << "pixelfly: error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "pixelfly: error: " << e.what() << "\n";
    return 1;
  }
  return exit_code;
}
