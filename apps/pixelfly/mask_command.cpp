// pixelfly mask: show a flat block butterfly layout as text, JSON (block CSR) or a PNG picture.
#include <nlohmann/json.hpp>

#include <iostream>
#include <memory>

#include "commands.h"
#include "layout_png.h"
#include "pixelfly/io/atomic_file.h"
#include "pixelfly/pattern/flat_butterfly.h"

namespace pixelfly::cli {
namespace {

struct MaskArgs {
  FlatButterflyParams params;
  std::string format = "text";
  std::string output;
};

std::string layout_json(const BlockLayout& layout) {
  nlohmann::json j;
  j["block_rows"] = layout.block_rows();
  j["block_cols"] = layout.block_cols();
  j["block"] = layout.block();
  j["density"] = layout.density();
  j["row_ptr"] = layout.row_ptr();
  j["col_idx"] = layout.col_idx();
  return j.dump() + "\n";
}

void run_mask(const MaskArgs& args) {
  const BlockLayout layout = flat_butterfly_layout(args.params);
  if (args.format == "png") {
    if (args.output.empty()) throw std::invalid_argument("--format png needs --output FILE.png");
    write_layout_png(layout, args.output);
    std::cerr << "wrote " << args.output << " (" << layout.block_rows() << " x " << layout.block_cols()
              << " blocks, density " << layout.density() << ")\n";
    return;
  }
  const std::string text = args.format == "json" ? layout_json(layout) : layout.to_text();
  if (args.output.empty()) {
    std::cout << text;
  } else {
    io::write_file_atomically(args.output, text);
  }
}

}  // namespace

void add_mask_command(CLI::App& app) {
  auto args = std::make_shared<MaskArgs>();
  CLI::App* cmd = app.add_subcommand("mask", "Show a flat block butterfly layout (text, JSON or PNG)");
  cmd->add_option("--out", args->params.out_features, "Output features (rows of the weight)")->required();
  cmd->add_option("--in", args->params.in_features, "Input features (columns of the weight)")->required();
  cmd->add_option("--butterfly-size,-n", args->params.butterfly_size, "Butterfly size n (power of two)")
      ->capture_default_str();
  cmd->add_option("--factors,-k", args->params.factors, "Number of butterfly factors k (1..log2 n)")
      ->capture_default_str();
  cmd->add_option("--block,-b", args->params.block, "Block size b")->capture_default_str();
  cmd->add_option("--format", args->format, "text: X and . per block; json: block CSR; png: a picture")
      ->check(CLI::IsMember({"text", "json", "png"}))
      ->capture_default_str();
  cmd->add_option("--output,-o", args->output, "Write to this file (required for png; default stdout)");
  cmd->footer(
      "Examples:\n"
      "  pixelfly mask --out 8 --in 8 --butterfly-size 8 --factors 2 --block 1\n"
      "  pixelfly mask --out 3072 --in 768 -n 16 -k 2 -b 32 --format png --output fc1.png");
  cmd->callback([args] { run_mask(*args); });
}

}  // namespace pixelfly::cli
