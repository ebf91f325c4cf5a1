// The training loop of `pixelfly train`: builds data, model and optimiser from a resolved
// configuration, trains with a warm-up + cosine schedule (AdamW, SGD or CrAM), label smoothing,
// gradient clipping and bfloat16 autocast on CUDA, evaluates every epoch, and keeps a run
// directory:
//   config.json        the resolved configuration
//   metrics.jsonl      one JSON line per logged step and per epoch (MetricsLog)
//   checkpoints/       step_NNNNNNNN/{model.safetensors, optimizer.pt, trainer.json} + latest
//   loss.png, accuracy.png   curves drawn by gnuplot
//   summary.json       the final numbers, or how far a stopped run got and why (stop_reason)
// A non-finite loss stops the run (the last good checkpoint stays); --resume continues from the
// latest checkpoint and on CPU reproduces an uninterrupted run bit for bit.
#pragma once

#include <nlohmann/json.hpp>

#include <ostream>
#include <string>

namespace pixelfly::train {

struct TrainSummary {
  bool finished = false;       // false: stopped early (non-finite loss or train.max_steps)
  std::string stop_reason;     // empty when finished
  int64_t steps = 0, epochs = 0;
  double final_loss = 0;       // evaluation loss of the last epoch (nats per example / per byte)
  double final_accuracy = 0;   // test accuracy (images) or next-byte accuracy (text)
  double bits_per_byte = 0;    // text only
  double median_step_ms = 0;   // wall time of one optimiser step (data wait excluded)
  int64_t parameters = 0;
  double train_flops_per_step = 0;
  double train_seconds = 0;
  std::string device;
  nlohmann::json to_json() const;
};

struct TrainOptions {
  bool resume = false;         // continue from <run.dir>/checkpoints/latest
  bool terminal = false;       // draw a progress bar (else plain lines)
};

// `config` is the resolved configuration (load_config); errors are std::exception subclasses
// with messages naming the key or file at fault.
TrainSummary train_model(const nlohmann::json& config, const TrainOptions& options, std::ostream& out);

}  // namespace pixelfly::train
