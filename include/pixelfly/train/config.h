// Training configuration: one JSON object with sections run, data, model, optim, schedule and
// train. Every key has a default and a one-line description in one table (config_keys()), which
// docs/config.md mirrors. A run's configuration is the defaults, overlaid by a JSON file, then by
// `--set a.b=value` overrides; unknown keys and values of the wrong type or outside their range
// are rejected with a message naming the key, the value and what was expected.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "pixelfly/models/model_zoo.h"

namespace pixelfly::train {

struct ConfigKey {
  std::string path;           // dotted, e.g. "optim.lr"
  nlohmann::json default_value;
  std::string help;
};

// Every key, in documentation order.
const std::vector<ConfigKey>& config_keys();
// The nested JSON object of all defaults.
nlohmann::json default_config();

// Overlays `overlay` onto `config`. Throws std::invalid_argument for a key not in config_keys()
// (naming it and the keys of its section) or a value whose JSON type differs from the default's
// (integers are accepted where a number is expected). `origin` names where the overlay came from.
void merge_config(nlohmann::json& config, const nlohmann::json& overlay, const std::string& origin);
// Applies one "a.b=value" override; the value is read as JSON when it parses as JSON (numbers,
// true/false, [lists]) and as a string otherwise.
void apply_override(nlohmann::json& config, const std::string& assignment);
// Defaults, then the file (if not empty), then the overrides in order. Errors name the file.
nlohmann::json load_config(const std::string& path, const std::vector<std::string>& overrides);

// The configuration in typed form, validated.
struct TrainConfig {
  // run
  std::string run_dir;
  uint64_t seed = 0;
  std::string device;  // "auto" | "cpu" | "cuda" | "cuda:N"
  int64_t threads = 0;
  // data
  std::string data_name;  // "fashion-mnist" | "mnist-format" | "cifar10" | "text" | "synthetic-images" | "synthetic-text"
  std::string data_dir;
  std::vector<std::string> text_files;
  std::string corpus_cache;
  int64_t batch_size = 0, eval_batch_size = 0;
  bool augment = true, flip = true;
  int64_t crop_padding = 0, prefetch = 0, context = 0, train_subset = 0, steps_per_epoch = 0, eval_batches = 0;
  double validation_fraction = 0;
  int64_t synthetic_count = 0, synthetic_image_size = 0, synthetic_channels = 0, synthetic_classes = 0;
  // model
  models::ModelConfig model;
  // optim
  std::string optimizer;  // "sgd" | "adamw" | "cram"
  std::string cram_base;  // "sgd" | "adamw"
  double lr = 0, weight_decay = 0, momentum = 0, beta1 = 0, beta2 = 0, eps = 0;
  bool nesterov = false;
  double cram_rho = 0;
  bool cram_plus = true, cram_sparse_grad = true, cram_normalize = false, keep_first_dense = false,
       keep_last_dense = false;
  std::vector<std::string> cram_compressors;  // "global:0.7", "uniform:0.5", "nm:2:4", "block:0.8:32"
  // schedule
  int64_t epochs = 0, warmup_epochs = 0;
  double min_lr_ratio = 0;
  // train
  double label_smoothing = 0, grad_clip = 0;
  bool cuda_graph = false;
  std::string precision;  // "auto" | "fp32" | "bf16"
  int64_t log_every = 0, checkpoint_every = 0, keep_checkpoints = 0, max_steps = 0;
  bool plots = true;
};

// Throws std::invalid_argument naming the key, the value and what was expected.
TrainConfig parse_config(const nlohmann::json& config);

}  // namespace pixelfly::train
