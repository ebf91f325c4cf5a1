// One-shot pruning sweep: for each sparsity, compress the model's weights in one shot,
// evaluate, optionally recalibrate batch norm and evaluate again, then restore the model. The
// heart of `pixelfly prune`; results as a table, JSON, and a PNG plot of accuracy against
// sparsity (drawn by gnuplot).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pixelfly/compress/compressor.h"

namespace pixelfly::compress {

struct SweepRow {
  std::string compressor;       // Compressor::describe()
  double target_sparsity = 0;
  double reached_sparsity = 0;  // over the compressed weights
  int64_t kept = 0, total = 0;  // weights kept / compressible weights
  double accuracy = 0;
  std::optional<double> recalibrated_accuracy;
};

// `make_compressor(s)` builds the compressor for sparsity s; `evaluate()` returns the test
// accuracy of the model as it is; `recalibrate` (may be empty) recalibrates batch norm;
// `on_compressed` (may be empty) sees each level's row while the model is still compressed (and
// recalibrated), e.g. to save it. Every parameter and buffer is restored after each level, so
// the model leaves as it came.
std::vector<SweepRow> one_shot_sweep(torch::nn::Module& model, const std::vector<NamedWeight>& weights,
                                     const std::function<std::shared_ptr<Compressor>(double)>& make_compressor,
                                     const std::vector<double>& sparsities, const std::function<double()>& evaluate,
                                     const std::function<void()>& recalibrate = {},
                                     const std::function<void(const SweepRow&)>& on_compressed = {});

std::string sweep_table(const std::vector<SweepRow>& rows);
std::string sweep_json(const std::vector<SweepRow>& rows);

// Writes a PNG of accuracy (with and without recalibration) against sparsity through gnuplot,
// atomically. Returns false, writing nothing, when gnuplot is not installed; throws
// std::runtime_error when gnuplot fails.
bool write_sweep_plot(const std::vector<SweepRow>& rows, const std::string& png_path);

}  // namespace pixelfly::compress
