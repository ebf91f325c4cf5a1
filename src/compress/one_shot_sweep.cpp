// One-shot pruning sweep with model restore, and its table, JSON and plot.
#include "pixelfly/compress/one_shot_sweep.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <sstream>
#include <stdexcept>

#include "pixelfly/io/gnuplot.h"

namespace pixelfly::compress {

std::vector<SweepRow> one_shot_sweep(torch::nn::Module& model, const std::vector<NamedWeight>& weights,
                                     const std::function<std::shared_ptr<Compressor>(double)>& make_compressor,
                                     const std::vector<double>& sparsities, const std::function<double()>& evaluate,
                                     const std::function<void()>& recalibrate,
                                     const std::function<void(const SweepRow&)>& on_compressed) {
  // Everything that compression or recalibration may change.
  std::vector<std::pair<at::Tensor, at::Tensor>> state;
  for (const auto& p : model.named_parameters(/*recurse=*/true)) state.emplace_back(p.value(), p.value().detach().clone());
  for (const auto& b : model.named_buffers(/*recurse=*/true)) state.emplace_back(b.value(), b.value().clone());
  const bool was_training = model.is_training();
  auto restore = [&] {
    at::NoGradGuard no_grad;
    for (auto& [live, saved] : state) live.copy_(saved);
    model.train(was_training);
  };

  std::vector<SweepRow> rows;
  for (double sparsity : sparsities) {
    const std::shared_ptr<Compressor> compressor = make_compressor(sparsity);
    const MaskMap masks = compressor->masks(weights);
    apply_masks(weights, masks);
    SweepRow row;
    row.compressor = compressor->describe();
    row.target_sparsity = sparsity;
    row.reached_sparsity = sparsity_of(masks);
    for (const auto& [name, mask] : masks) {
      row.kept += mask.sum().item<int64_t>();
      row.total += mask.numel();
    }
    model.eval();
    row.accuracy = evaluate();
    if (recalibrate) {
      recalibrate();
      model.eval();
      row.recalibrated_accuracy = evaluate();
    }
    if (on_compressed) on_compressed(row);
    rows.push_back(row);
    restore();
  }
  return rows;
}

std::string sweep_table(const std::vector<SweepRow>& rows) {
  std::ostringstream out;
  char line[256];
  std::snprintf(line, sizeof(line), "%-8s %-9s %-10s %-14s %14s\n", "target", "reached", "accuracy", "recalibrated",
                "weights kept");
  out << line;
  for (const SweepRow& r : rows) {
    const std::string recal = r.recalibrated_accuracy ? std::to_string(*r.recalibrated_accuracy).substr(0, 6) : "-";
    std::snprintf(line, sizeof(line), "%-8.3f %-9.4f %-10.4f %-14s %7lld/%lld\n", r.target_sparsity, r.reached_sparsity,
                  r.accuracy, recal.c_str(), static_cast<long long>(r.kept), static_cast<long long>(r.total));
    out << line;
  }
  return out.str();
}

std::string sweep_json(const std::vector<SweepRow>& rows) {
  nlohmann::json j = nlohmann::json::array();
  for (const SweepRow& r : rows) {
    nlohmann::json row = {{"compressor", r.compressor},       {"target_sparsity", r.target_sparsity},
                          {"reached_sparsity", r.reached_sparsity}, {"kept", r.kept},
                          {"total", r.total},                  {"accuracy", r.accuracy}};
    row["recalibrated_accuracy"] = r.recalibrated_accuracy ? nlohmann::json(*r.recalibrated_accuracy) : nlohmann::json();
    j.push_back(row);
  }
  return j.dump(2) + "\n";
}

bool write_sweep_plot(const std::vector<SweepRow>& rows, const std::string& png_path) {
  std::ostringstream commands;
  commands << "$sweep << EOD\n";
  for (const SweepRow& r : rows) {
    commands << r.reached_sparsity << ' ' << r.accuracy << ' '
             << (r.recalibrated_accuracy ? std::to_string(*r.recalibrated_accuracy) : std::string("NaN")) << '\n';
  }
  commands << "EOD\n";
  const bool recalibrated = !rows.empty() && rows.front().recalibrated_accuracy.has_value();
  commands << "set xlabel 'sparsity'; set ylabel 'accuracy'; set grid; set key bottom left\n"
           << "plot $sweep using 1:2 with linespoints title 'one-shot'"
           << (recalibrated ? ", $sweep using 1:3 with linespoints title 'one-shot + BN recalibration'" : "") << "\n";
  return io::draw_png_with_gnuplot(png_path, commands.str());
}

}  // namespace pixelfly::compress
