// Training configuration: the defaults parse into the documented typed values; a file and then
// --set overrides apply in order; unknown keys, values of the wrong type and values out of range
// are refused with a message that names the key, the value and what was expected.
#include "pixelfly/train/config.h"

#include "io/temp_dir.h"

#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace pixelfly::train {
namespace {

using nlohmann::json;
using pixelfly::testing::TempDir;
using pixelfly::testing::write_bytes;

// The std::invalid_argument message of `call`, or "no error".
std::string invalid_argument_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no error";
}

// The message parse_config gives for the defaults with `overrides` applied.
std::string parse_error(const std::vector<std::string>& overrides) {
  return invalid_argument_of([&] { parse_config(load_config("", overrides)); });
}

TEST(Config, DefaultsParseToTheDocumentedValues) {
  const json config = default_config();
  EXPECT_EQ(config.at("optim").at("cram").at("rho"), 0.05);
  EXPECT_EQ(config.at("data").at("batch_size"), 128);
  const TrainConfig c = parse_config(config);
  EXPECT_EQ(c.run_dir, "runs/default");
  EXPECT_EQ(c.seed, 0u);
  EXPECT_EQ(c.device, "auto");
  EXPECT_EQ(c.data_name, "fashion-mnist");
  EXPECT_EQ(c.batch_size, 128);
  EXPECT_EQ(c.eval_batch_size, 500);
  EXPECT_TRUE(c.augment);
  EXPECT_EQ(c.crop_padding, 2);
  EXPECT_EQ(c.prefetch, 2);
  EXPECT_EQ(c.context, 128);
  EXPECT_DOUBLE_EQ(c.validation_fraction, 0.05);
  EXPECT_EQ(c.synthetic_count, 10000);
  EXPECT_EQ(c.model.preset, "mixer-small28");
  EXPECT_EQ(c.model.sparsity, models::Sparsity::Dense);
  EXPECT_DOUBLE_EQ(c.model.mlp_density, 0.25);
  EXPECT_DOUBLE_EQ(c.model.low_rank_share, 0.2);
  EXPECT_TRUE(c.model.block_sizes.empty());
  EXPECT_EQ(c.optimizer, "adamw");
  EXPECT_EQ(c.cram_base, "sgd");
  EXPECT_DOUBLE_EQ(c.lr, 1e-3);
  EXPECT_DOUBLE_EQ(c.weight_decay, 0.05);
  EXPECT_DOUBLE_EQ(c.beta2, 0.999);
  EXPECT_DOUBLE_EQ(c.eps, 1e-8);
  EXPECT_TRUE(c.cram_plus);
  EXPECT_EQ(c.cram_compressors, (std::vector<std::string>{"global:0.5", "global:0.7", "global:0.9"}));
  EXPECT_EQ(c.epochs, 10);
  EXPECT_EQ(c.warmup_epochs, 0);
  EXPECT_EQ(c.precision, "auto");
  EXPECT_FALSE(c.cuda_graph);
  EXPECT_EQ(c.log_every, 20);
  EXPECT_EQ(c.keep_checkpoints, 2);
  EXPECT_EQ(c.max_steps, 0);
  EXPECT_TRUE(c.plots);
}

TEST(Config, EveryKeyHasItsDefaultInTheDefaultConfig) {
  const json config = default_config();
  std::set<std::string> paths;
  for (const ConfigKey& key : config_keys()) {
    EXPECT_FALSE(key.help.empty()) << key.path;
    std::string pointer = "/" + key.path;
    for (char& ch : pointer) ch = ch == '.' ? '/' : ch;
    EXPECT_EQ(config.at(json::json_pointer(pointer)), key.default_value) << key.path;
    EXPECT_TRUE(paths.insert(key.path).second) << key.path << " twice";
  }
  EXPECT_EQ(config.size(), 6u);  // run, data, model, optim, schedule, train
  EXPECT_EQ(config.at("optim").at("cram").size(), 8u);
}

TEST(Config, FileThenOverridesInOrder) {
  TempDir dir;
  const std::string path = dir / "run.json";
  write_bytes(path,
              "{\n"
              "  // comments are allowed\n"
              "  \"optim\": {\"name\": \"sgd\", \"lr\": 0.1, \"cram\": {\"rho\": 0.2}},\n"
              "  \"data\": {\"batch_size\": 32, \"text_files\": [\"a.txt\", \"b.txt\"]}\n"
              "}\n");
  const json config = load_config(path, {"optim.lr=0.02", "data.batch_size=16", "optim.lr=0.03",
                                         "model.sparsity=pixelfly", "run.device=cuda:1", "optim.nesterov=true",
                                         "model.block_sizes=[16,32]"});
  const TrainConfig c = parse_config(config);
  EXPECT_EQ(c.optimizer, "sgd");                      // file
  EXPECT_DOUBLE_EQ(c.lr, 0.03);                       // the last override wins
  EXPECT_DOUBLE_EQ(c.cram_rho, 0.2);                  // nested section of the file
  EXPECT_DOUBLE_EQ(c.momentum, 0.9);                  // untouched default beside them
  EXPECT_EQ(c.batch_size, 16);
  EXPECT_EQ(c.text_files, (std::vector<std::string>{"a.txt", "b.txt"}));
  EXPECT_EQ(c.model.sparsity, models::Sparsity::Pixelfly);
  EXPECT_EQ(c.device, "cuda:1");                      // not JSON: a string
  EXPECT_TRUE(c.nesterov);                            // JSON true
  EXPECT_EQ(c.model.block_sizes, (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(config.at("optim").at("lr"), 0.03);
}

TEST(Config, OverrideValuesAreJsonOrElseText) {
  json config = default_config();
  apply_override(config, "run.dir=runs/a=b");  // split at the first '='
  EXPECT_EQ(config["run"]["dir"], "runs/a=b");
  apply_override(config, "run.dir=2024");  // a string key takes the text even when it is a number
  EXPECT_EQ(config["run"]["dir"], "2024");
  apply_override(config, "run.dir=\"quoted\"");
  EXPECT_EQ(config["run"]["dir"], "quoted");
  apply_override(config, "optim.lr=1");  // an integer where a number is expected
  EXPECT_DOUBLE_EQ(parse_config(config).lr, 1.0);
  apply_override(config, "optim.cram.compressors=[\"nm:2:4\"]");
  EXPECT_EQ(parse_config(config).cram_compressors, std::vector<std::string>{"nm:2:4"});
  EXPECT_EQ(invalid_argument_of([&] { apply_override(config, "optim.lr"); }),
            "--set 'optim.lr' must look like KEY=VALUE, e.g. optim.lr=0.01");
  EXPECT_EQ(invalid_argument_of([&] { apply_override(config, "=3"); }),
            "--set '=3' must look like KEY=VALUE, e.g. optim.lr=0.01");
}

TEST(Config, UnknownKeysNameTheKeyAndListTheSection) {
  EXPECT_EQ(invalid_argument_of([] { load_config("", {"optim.lrr=0.1"}); }),
            "--set optim.lrr: unknown configuration key 'optim.lrr'; keys of 'optim': beta1, beta2, cram, eps, lr, "
            "momentum, name, nesterov, weight_decay");
  EXPECT_EQ(invalid_argument_of([] { load_config("", {"optim.cram.radius=0.1"}); }),
            "--set optim.cram.radius: unknown configuration key 'optim.cram.radius'; keys of 'optim.cram': base, "
            "compressors, keep_first_dense, keep_last_dense, normalize, plus, rho, sparse_grad");
  EXPECT_EQ(invalid_argument_of([] { load_config("", {"trainer.epochs=3"}); }),
            "--set trainer.epochs: unknown configuration key 'trainer'; sections: data, model, optim, run, schedule, "
            "train");
  EXPECT_EQ(invalid_argument_of([] { load_config("", {"optim=3"}); }), "--set optim: 'optim' must be a JSON object");

  TempDir dir;
  write_bytes(dir / "bad.json", "{\"schedule\": {\"epoch\": 3}}");
  EXPECT_EQ(invalid_argument_of([&] { load_config(dir / "bad.json", {}); }),
            "config file '" + (dir / "bad.json") +
                "': unknown configuration key 'schedule.epoch'; keys of 'schedule': epochs, min_lr_ratio, "
                "warmup_epochs");
  write_bytes(dir / "broken.json", "{\"schedule\": ");
  EXPECT_EQ(invalid_argument_of([&] { load_config(dir / "broken.json", {}); }),
            "config file '" + (dir / "broken.json") + "' is not valid JSON");
  EXPECT_EQ(invalid_argument_of([&] { load_config(dir / "missing.json", {}); }),
            "cannot open config file '" + (dir / "missing.json") + "'");
}

TEST(Config, WrongTypesNameTheKeyTheValueAndTheType) {
  EXPECT_EQ(invalid_argument_of([] { load_config("", {"optim.lr=abc"}); }),
            "--set optim.lr: 'optim.lr' must be a number, got \"abc\"");
  EXPECT_EQ(invalid_argument_of([] { load_config("", {"data.batch_size=64.5"}); }),
            "--set data.batch_size: 'data.batch_size' must be an integer, got 64.5");
  EXPECT_EQ(invalid_argument_of([] { load_config("", {"data.augment=yes"}); }),
            "--set data.augment: 'data.augment' must be true or false, got \"yes\"");
  EXPECT_EQ(invalid_argument_of([] { load_config("", {"data.text_files=a.txt"}); }),
            "--set data.text_files: 'data.text_files' must be a list, got \"a.txt\"");
  EXPECT_EQ(invalid_argument_of([] { load_config("", {"optim.lr.peak=1"}); }),
            "--set optim.lr.peak: 'optim.lr' must be a number, got {\"peak\":1}");
  EXPECT_EQ(parse_error({"data.text_files=[1,2]"}),
            "configuration 'data.text_files' = [1,2]: expected a list of strings");
  EXPECT_EQ(parse_error({"optim.cram.compressors=[0.5]"}),
            "configuration 'optim.cram.compressors' = [0.5]: expected a list of strings");
  EXPECT_EQ(parse_error({"model.block_sizes=[16,\"x\"]"}),
            "configuration 'model.block_sizes' = [16,\"x\"]: expected a list of positive integers");
}

TEST(Config, ValuesOutOfRangeNameTheKeyTheValueAndTheRange) {
  EXPECT_EQ(parse_error({"optim.lr=-1"}), "configuration 'optim.lr' = -1.0: expected a number in (0, 1000]");
  EXPECT_EQ(parse_error({"optim.lr=0"}), "configuration 'optim.lr' = 0.0: expected a number in (0, 1000]");
  EXPECT_EQ(parse_error({"data.batch_size=0"}), "configuration 'data.batch_size' = 0: expected an integer > 0");
  EXPECT_EQ(parse_error({"data.prefetch=-1"}), "configuration 'data.prefetch' = -1: expected an integer >= 0");
  EXPECT_EQ(parse_error({"model.sparsity=sparse"}),
            "configuration 'model.sparsity' = \"sparse\": expected one of dense, pixelfly");
  EXPECT_EQ(parse_error({"schedule.epochs=10", "schedule.warmup_epochs=10"}),
            "configuration 'schedule.warmup_epochs' = 10: expected fewer than schedule.epochs (10)");
  EXPECT_EQ(parse_error({"optim.momentum=1"}), "configuration 'optim.momentum' = 1.0: expected a number in [0, 1)");
  EXPECT_EQ(parse_error({"model.low_rank_share=0"}), "no error");
  EXPECT_EQ(parse_error({"model.low_rank_share=1"}),
            "configuration 'model.low_rank_share' = 1.0: expected a number in [0, 1)");
  EXPECT_EQ(parse_error({"model.mlp_density=0"}),
            "configuration 'model.mlp_density' = 0.0: expected a number in (0, 1]");
  EXPECT_EQ(parse_error({"data.classes=1"}), "configuration 'data.classes' = 1: expected at least 2");
  EXPECT_EQ(parse_error({"optim.name=adam"}), "configuration 'optim.name' = \"adam\": expected one of adamw, cram, sgd");
  EXPECT_EQ(parse_error({"train.precision=fp16"}),
            "configuration 'train.precision' = \"fp16\": expected one of auto, bf16, fp32");
  EXPECT_EQ(parse_error({"run.device=tpu"}), "configuration 'run.device' = \"tpu\": expected auto, cpu, cuda or cuda:N");
  EXPECT_EQ(parse_error({"data.name=cifar10"}),
            "configuration 'data.dir' = \"\": expected the directory of the cifar10 files");
  EXPECT_EQ(parse_error({"optim.name=cram", "train.cuda_graph=true"}),
            "configuration 'train.cuda_graph' = true: expected false with optim.name = cram (CrAM draws a "
            "compression on the host every step)");
  EXPECT_EQ(parse_error({"optim.cram.compressors=[]"}),
            "configuration 'optim.cram.compressors' = []: expected at least one compression");
  const std::string bad_compressor = parse_error({"optim.cram.compressors=[\"global:0.5\",\"global:lots\"]"});
  EXPECT_EQ(bad_compressor.rfind("configuration 'optim.cram.compressors' = [\"global:0.5\",\"global:lots\"]: "
                                 "expected valid compressions: compressor 'global:lots': 'lots' is not a number",
                                 0),
            0u)
      << bad_compressor;
}

TEST(Config, ModelPresetMustBeKnown) {
  const std::string message = parse_error({"model.preset=mixer-xl"});
  EXPECT_EQ(message.rfind("configuration 'model.preset' = \"mixer-xl\": expected one of ", 0), 0u) << message;
  for (const std::string& preset : models::model_preset_names()) {
    EXPECT_NE(message.find(preset), std::string::npos) << preset;
    EXPECT_EQ(parse_error({"model.preset=" + preset}), "no error") << preset;
  }
}

}  // namespace
}  // namespace pixelfly::train
