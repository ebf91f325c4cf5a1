// Training configuration: the key table, merging, overrides and typed validation.
#include "pixelfly/train/config.h"

#include "pixelfly/compress/compressor_spec.h"

#include <c10/util/Exception.h>

#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

namespace pixelfly::train {
namespace {

using nlohmann::json;

std::vector<ConfigKey> make_keys() {
  return {
      {"run.dir", "runs/default", "Run directory: resolved config, metrics, checkpoints, plots."},
      {"run.seed", 0, "Seed of every random choice (initialisation, data order, augmentation, CrAM draws)."},
      {"run.device", "auto", "auto (cuda when present, else cpu), cpu, cuda or cuda:N."},
      {"run.threads", 0, "CPU threads for LibTorch; 0 keeps LibTorch's default."},
      {"data.name", "fashion-mnist",
       "fashion-mnist, mnist-format (any MNIST-layout directory in data.dir), cifar10 (binary batches in data.dir), "
       "text (byte-level corpus), synthetic-images or synthetic-text."},
      {"data.dir", "", "Data directory; empty: /usr/share/datasets/fashion-mnist for fashion-mnist."},
      {"data.text_files", json::array(), "Text files of the text corpus; empty: the King James Bible (package bible-kjv)."},
      {"data.corpus_cache", "", "Where the default corpus is cached as text; empty: <run.dir>/../kjv.txt."},
      {"data.batch_size", 128, "Training batch size (images, or sequences of data.context bytes)."},
      {"data.eval_batch_size", 500, "Evaluation batch size."},
      {"data.augment", true, "Random crop with zero padding (and flip, see data.flip) on training images."},
      {"data.crop_padding", 2, "Pixels of zero padding before the random crop."},
      {"data.flip", true, "Random horizontal flips when data.augment is on."},
      {"data.prefetch", 2, "Batches prepared ahead on a background thread (0: on the training thread)."},
      {"data.train_subset", 0, "Train on the first N training examples only; 0: all."},
      {"data.context", 128, "Sequence length of language-model batches."},
      {"data.validation_fraction", 0.05, "Share of the text corpus (its end) held out for evaluation."},
      {"data.steps_per_epoch", 0,
       "text and synthetic-text: batches per epoch (random windows); 0: training bytes / (batch x context)."},
      {"data.eval_batches", 0, "Cap on evaluation batches; 0: the whole test or validation split."},
      {"data.synthetic_count", 10000, "Synthetic data: images, or tokens for synthetic-text."},
      {"data.image_size", 32, "Synthetic images: side in pixels."},
      {"data.channels", 3, "Synthetic images: channels."},
      {"data.classes", 10, "Synthetic images: classes."},
      {"model.preset", "mixer-small28", "Model preset: mixer-s16, mixer-b16, mixer-small28, vit-s16, vit-b16, vit-small28, gpt2-small, "
       "gpt2-medium, gpt2-tiny, resnet20, resnet18 or resnet50."},
      {"model.sparsity", "dense", "dense, or pixelfly: the layers the paper sparsifies become PixelflyLinear."},
      {"model.mlp_density", 0.25, "Target total density (sparse + low rank) of each sparsified MLP layer."},
      {"model.low_rank_share", 0.2, "Share of each sparsified layer's budget given to the low-rank term."},
      {"model.sparsify_attention", false, "Also sparsify attention projections (ViT, GPT-2)."},
      {"model.attention_density", 0.25, "Target density of sparsified attention projections."},
      {"model.block_sizes", json::array(), "Block sizes the planner may use; empty: the preset's."},
      {"optim.name", "adamw", "sgd, adamw or cram (CrAM around optim.cram.base)."},
      {"optim.lr", 1e-3, "Peak learning rate."},
      {"optim.weight_decay", 0.05, "Weight decay; never applied to biases, norms or mixing weights (tensors of < 2 dims)."},
      {"optim.momentum", 0.9, "SGD momentum."},
      {"optim.nesterov", false, "SGD Nesterov momentum."},
      {"optim.beta1", 0.9, "AdamW beta1."},
      {"optim.beta2", 0.999, "AdamW beta2."},
      {"optim.eps", 1e-8, "AdamW epsilon."},
      {"optim.cram.base", "sgd", "The optimiser CrAM wraps: sgd or adamw (with the optim.* settings above)."},
      {"optim.cram.rho", 0.05, "CrAM perturbation radius rho."},
      {"optim.cram.plus", true, "CrAM+: step with g2 + g1 (otherwise g2)."},
      {"optim.cram.sparse_grad", true, "Mask g2 with the compression mask."},
      {"optim.cram.normalize", false, "Perturb by rho g1 / ||g1|| instead of rho g1."},
      {"optim.cram.compressors", json::array({"global:0.5", "global:0.7", "global:0.9"}),
       "Compressions drawn uniformly each step: global:S, uniform:S, nm:N:M, block:S:B."},
      {"optim.cram.keep_first_dense", false, "Never compress the first weight (usually the stem)."},
      {"optim.cram.keep_last_dense", false, "Never compress the last weight (usually the classifier)."},
      {"schedule.epochs", 10, "Training epochs."},
      {"schedule.warmup_epochs", 0, "Linear warm-up epochs before the cosine decay."},
      {"schedule.min_lr_ratio", 0.0, "Learning rate at the end of the cosine, as a share of optim.lr."},
      {"train.label_smoothing", 0.0, "Label smoothing of the cross-entropy."},
      {"train.grad_clip", 0.0, "Clip the global gradient norm to this; 0: off."},
      {"train.cuda_graph", false,
       "Capture the training step as a CUDA graph once and replay it (CUDA, sgd or adamw; not cram)."},
      {"train.precision", "auto", "auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16 (CUDA only)."},
      {"train.log_every", 20, "Steps between metrics lines (and plain progress lines when not on a terminal)."},
      {"train.checkpoint_every", 0, "Also checkpoint every N steps (0: never); every epoch end is checkpointed in any case."},
      {"train.keep_checkpoints", 2, "Checkpoints kept in the run directory (the newest)."},
      {"train.max_steps", 0, "Stop after this many steps (for quick runs and benchmarks); 0: no limit."},
      {"train.plots", true, "Draw PNG plots of the curves with gnuplot at every epoch end."},
  };
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::stringstream stream(path);
  for (std::string part; std::getline(stream, part, '.');) parts.push_back(part);
  return parts;
}

bool same_kind(const json& expected, const json& value) {
  if (expected.is_number_float()) return value.is_number();
  if (expected.is_number_integer()) return value.is_number_integer();
  if (expected.is_array()) {
    if (!value.is_array()) return false;
    for (const json& item : value) {
      if (!(item.is_string() || item.is_number())) return false;
    }
    return true;
  }
  return expected.type() == value.type();
}

std::string kind_name(const json& value) {
  if (value.is_number_float()) return "a number";
  if (value.is_number_integer()) return "an integer";
  if (value.is_boolean()) return "true or false";
  if (value.is_string()) return "a string";
  if (value.is_array()) return "a list";
  return "an object";
}

void merge_into(json& target, const json& overlay, const std::string& prefix, const std::string& origin) {
  if (!overlay.is_object()) {
    throw std::invalid_argument(origin + ": '" + (prefix.empty() ? std::string("the configuration") : prefix) +
                                "' must be a JSON object");
  }
  for (auto it = overlay.begin(); it != overlay.end(); ++it) {
    const std::string path = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (!target.contains(it.key())) {
      std::string known;
      for (auto k = target.begin(); k != target.end(); ++k) known += (known.empty() ? "" : ", ") + k.key();
      throw std::invalid_argument(origin + ": unknown configuration key '" + path + "'; " +
                                  (prefix.empty() ? "sections" : "keys of '" + prefix + "'") + ": " + known);
    }
    json& slot = target[it.key()];
    if (slot.is_object()) {
      merge_into(slot, it.value(), path, origin);
    } else if (!same_kind(slot, it.value())) {
      throw std::invalid_argument(origin + ": '" + path + "' must be " + kind_name(slot) + ", got " + it.value().dump());
    } else {
      slot = it.value();
    }
  }
}

template <typename T>
T get(const json& config, const std::string& path) {
  const json* node = &config;
  for (const std::string& part : split_path(path)) node = &node->at(part);
  return node->get<T>();
}

void check(bool ok, const std::string& key, const json& value, const std::string& expected) {
  if (!ok) throw std::invalid_argument("configuration '" + key + "' = " + value.dump() + ": expected " + expected);
}

void check_choice(const std::string& key, const std::string& value, const std::set<std::string>& choices) {
  std::string list;
  for (const std::string& c : choices) list += (list.empty() ? "" : ", ") + c;
  check(choices.count(value) > 0, key, value, "one of " + list);
}

}  // namespace

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> keys = make_keys();
  return keys;
}

nlohmann::json default_config() {
  json config = json::object();
  for (const ConfigKey& key : config_keys()) {
    json* node = &config;
    for (const std::string& part : split_path(key.path)) node = &(*node)[part];
    *node = key.default_value;
  }
  return config;
}

void merge_config(nlohmann::json& config, const nlohmann::json& overlay, const std::string& origin) {
  merge_into(config, overlay, "", origin);
}

void apply_override(nlohmann::json& config, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw std::invalid_argument("--set '" + assignment + "' must look like KEY=VALUE, e.g. optim.lr=0.01");
  }
  const std::string path = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  const std::vector<std::string> parts = split_path(path);
  const json* slot = &config;
  for (const std::string& part : parts) slot = slot != nullptr && slot->contains(part) ? &(*slot)[part] : nullptr;
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  // Text that is not JSON, or any text given to a string key (run.dir=2024), is the string itself.
  if (value.is_discarded() || (slot != nullptr && slot->is_string() && !value.is_string())) value = text;
  json overlay = value;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) overlay = json{{*it, overlay}};
  merge_config(config, overlay, "--set " + path);
}

nlohmann::json load_config(const std::string& path, const std::vector<std::string>& overrides) {
  json config = default_config();
  if (!path.empty()) {
    std::ifstream file(path);
    if (!file) throw std::invalid_argument("cannot open config file '" + path + "'");
    json overlay = json::parse(file, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
    if (overlay.is_discarded()) throw std::invalid_argument("config file '" + path + "' is not valid JSON");
    merge_config(config, overlay, "config file '" + path + "'");
  }
  for (const std::string& assignment : overrides) apply_override(config, assignment);
  return config;
}

TrainConfig parse_config(const nlohmann::json& config) {
  TrainConfig c;
  auto positive = [&](const std::string& key) {
    const int64_t v = get<int64_t>(config, key);
    check(v > 0, key, v, "an integer > 0");
    return v;
  };
  auto non_negative = [&](const std::string& key) {
    const int64_t v = get<int64_t>(config, key);
    check(v >= 0, key, v, "an integer >= 0");
    return v;
  };
  auto in_range = [&](const std::string& key, double low, double high, bool low_open, bool high_open) {
    const double v = get<double>(config, key);
    const bool ok = (low_open ? v > low : v >= low) && (high_open ? v < high : v <= high);
    std::ostringstream range;
    range << "a number in " << (low_open ? "(" : "[") << low << ", " << high << (high_open ? ")" : "]");
    check(ok, key, v, range.str());
    return v;
  };
  auto strings = [&](const std::string& key) {
    const json& list = config.at(split_path(key)[0]).at(split_path(key)[1]);
    std::vector<std::string> out;
    for (const json& item : list) {
      check(item.is_string(), key, list, "a list of strings");
      out.push_back(item.get<std::string>());
    }
    return out;
  };

  c.run_dir = get<std::string>(config, "run.dir");
  check(!c.run_dir.empty(), "run.dir", c.run_dir, "a directory path");
  const int64_t seed = non_negative("run.seed");
  c.seed = static_cast<uint64_t>(seed);
  c.device = get<std::string>(config, "run.device");
  check(c.device == "auto" || c.device == "cpu" || c.device.rfind("cuda", 0) == 0, "run.device", c.device,
        "auto, cpu, cuda or cuda:N");
  c.threads = non_negative("run.threads");

  c.data_name = get<std::string>(config, "data.name");
  check_choice("data.name", c.data_name,
               {"fashion-mnist", "mnist-format", "cifar10", "text", "synthetic-images", "synthetic-text"});
  c.data_dir = get<std::string>(config, "data.dir");
  check(!c.data_dir.empty() || (c.data_name != "mnist-format" && c.data_name != "cifar10"), "data.dir", c.data_dir,
        "the directory of the " + c.data_name + " files");
  c.text_files = strings("data.text_files");
  c.corpus_cache = get<std::string>(config, "data.corpus_cache");
  c.batch_size = positive("data.batch_size");
  c.eval_batch_size = positive("data.eval_batch_size");
  c.augment = get<bool>(config, "data.augment");
  c.flip = get<bool>(config, "data.flip");
  c.crop_padding = non_negative("data.crop_padding");
  c.prefetch = non_negative("data.prefetch");
  c.train_subset = non_negative("data.train_subset");
  c.context = positive("data.context");
  c.validation_fraction = in_range("data.validation_fraction", 0, 1, true, true);
  c.steps_per_epoch = non_negative("data.steps_per_epoch");
  c.eval_batches = non_negative("data.eval_batches");
  c.synthetic_count = positive("data.synthetic_count");
  c.synthetic_image_size = positive("data.image_size");
  c.synthetic_channels = positive("data.channels");
  c.synthetic_classes = positive("data.classes");
  check(c.synthetic_classes >= 2, "data.classes", c.synthetic_classes, "at least 2");

  c.model.preset = get<std::string>(config, "model.preset");
  const std::vector<std::string> presets = models::model_preset_names();
  check_choice("model.preset", c.model.preset, std::set<std::string>(presets.begin(), presets.end()));
  const std::string sparsity = get<std::string>(config, "model.sparsity");
  check_choice("model.sparsity", sparsity, {"dense", "pixelfly"});
  c.model.sparsity = sparsity == "pixelfly" ? models::Sparsity::Pixelfly : models::Sparsity::Dense;
  c.model.mlp_density = in_range("model.mlp_density", 0, 1, true, false);
  c.model.low_rank_share = in_range("model.low_rank_share", 0, 1, false, true);
  c.model.sparsify_attention = get<bool>(config, "model.sparsify_attention");
  c.model.attention_density = in_range("model.attention_density", 0, 1, true, false);
  for (const json& b : config.at("model").at("block_sizes")) {
    check(b.is_number_integer() && b.get<int64_t>() > 0, "model.block_sizes", config["model"]["block_sizes"],
          "a list of positive integers");
    c.model.block_sizes.push_back(b.get<int64_t>());
  }

  c.optimizer = get<std::string>(config, "optim.name");
  check_choice("optim.name", c.optimizer, {"sgd", "adamw", "cram"});
  c.cram_base = get<std::string>(config, "optim.cram.base");
  check_choice("optim.cram.base", c.cram_base, {"sgd", "adamw"});
  c.lr = in_range("optim.lr", 0, 1e3, true, false);
  c.weight_decay = in_range("optim.weight_decay", 0, 1e3, false, false);
  c.momentum = in_range("optim.momentum", 0, 1, false, true);
  c.nesterov = get<bool>(config, "optim.nesterov");
  c.beta1 = in_range("optim.beta1", 0, 1, false, true);
  c.beta2 = in_range("optim.beta2", 0, 1, false, true);
  c.eps = in_range("optim.eps", 0, 1, true, false);
  c.cram_rho = in_range("optim.cram.rho", 0, 1e3, false, false);
  c.cram_plus = get<bool>(config, "optim.cram.plus");
  c.cram_sparse_grad = get<bool>(config, "optim.cram.sparse_grad");
  c.cram_normalize = get<bool>(config, "optim.cram.normalize");
  c.keep_first_dense = get<bool>(config, "optim.cram.keep_first_dense");
  c.keep_last_dense = get<bool>(config, "optim.cram.keep_last_dense");
  const json& compressors = config.at("optim").at("cram").at("compressors");
  for (const json& spec : compressors) {
    check(spec.is_string(), "optim.cram.compressors", compressors, "a list of strings");
    c.cram_compressors.push_back(spec.get<std::string>());
    std::string problem;
    try {
      compress::parse_compressor(c.cram_compressors.back());
    } catch (const c10::Error& e) {
      problem = e.what_without_backtrace();
    } catch (const std::exception& e) {
      problem = e.what();
    }
    check(problem.empty(), "optim.cram.compressors", compressors, "valid compressions: " + problem);
  }
  check(!c.cram_compressors.empty(), "optim.cram.compressors", compressors, "at least one compression");

  c.epochs = positive("schedule.epochs");
  c.warmup_epochs = non_negative("schedule.warmup_epochs");
  check(c.warmup_epochs < c.epochs || c.warmup_epochs == 0, "schedule.warmup_epochs", c.warmup_epochs,
        "fewer than schedule.epochs (" + std::to_string(c.epochs) + ")");
  c.min_lr_ratio = in_range("schedule.min_lr_ratio", 0, 1, false, false);

  c.label_smoothing = in_range("train.label_smoothing", 0, 1, false, true);
  c.grad_clip = in_range("train.grad_clip", 0, 1e9, false, false);
  c.cuda_graph = get<bool>(config, "train.cuda_graph");
  check(!(c.cuda_graph && c.optimizer == "cram"), "train.cuda_graph", c.cuda_graph,
        "false with optim.name = cram (CrAM draws a compression on the host every step)");
  c.precision = get<std::string>(config, "train.precision");
  check_choice("train.precision", c.precision, {"auto", "fp32", "bf16"});
  c.log_every = positive("train.log_every");
  c.checkpoint_every = non_negative("train.checkpoint_every");
  c.keep_checkpoints = positive("train.keep_checkpoints");
  c.max_steps = non_negative("train.max_steps");
  c.plots = get<bool>(config, "train.plots");
  return c;
}

}  // namespace pixelfly::train
