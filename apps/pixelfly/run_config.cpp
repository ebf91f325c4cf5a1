// Shared --config/--set handling and run-directory lookup.
#include "run_config.h"

#include <unistd.h>

#include <stdexcept>

#include "pixelfly/io/file_system.h"
#include "pixelfly/train/config.h"

namespace pixelfly::cli {

void add_config_options(CLI::App& command, ConfigArgs& args) {
  command.add_option("--config", args.config_file, "JSON configuration file (keys: docs/config.md)")
      ->check(CLI::ExistingFile);
  command.add_option("--set", args.overrides, "Override one key, e.g. --set optim.lr=0.01 (repeatable)")
      ->type_name("KEY=VALUE");
  command
      .add_option_function<std::string>(
          "--device", [&args](const std::string& device) { args.overrides.push_back("run.device=" + device); },
          "auto | cpu | cuda | cuda:N (same as --set run.device=...)")
      ->type_name("DEVICE");
}

std::string run_dir_of(const std::string& path) {
  std::string dir = path;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (io::is_file(dir)) {  // a weights file: look beside it
    const auto slash = dir.find_last_of('/');
    dir = slash == std::string::npos ? "." : dir.substr(0, slash);
  }
  for (int up = 0; up < 3; ++up) {
    if (io::is_file(dir + "/config.json")) return dir;
    const auto slash = dir.find_last_of('/');
    if (slash == std::string::npos) {
      dir = ".";
    } else {
      dir = dir.substr(0, slash);
    }
  }
  throw std::invalid_argument("'" + path + "' is not inside a run directory (no config.json found in it or above it)");
}

nlohmann::json load_run_config(const std::string& run_dir, const std::vector<std::string>& overrides) {
  return train::load_config(run_dir + "/config.json", overrides);
}

bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

}  // namespace pixelfly::cli
