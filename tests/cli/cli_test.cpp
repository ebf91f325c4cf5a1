// The pixelfly command line, run as a user would: output formats of `mask`, the `plan` table,
// train / eval / prune / bench on tiny synthetic runs, help with examples, and one clear error
// line with a non-zero exit for bad input.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "io/temp_dir.h"

namespace {

using pixelfly::testing::exists;
using pixelfly::testing::read_bytes;
using pixelfly::testing::TempDir;

struct Result {
  int exit_code;
  std::string output;  // stdout and stderr together
};

Result run(const std::string& args) {
  const std::string command = std::string(PIXELFLY_CLI_PATH) + " " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

TEST(Cli, MaskTextDrawsTheSpecExample) {
  const Result r = run("mask --out 8 --in 8 --butterfly-size 8 --factors 2 --block 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "XXX.....\nXX.X....\nX.XX....\n.XXX....\n....XXX.\n....XX.X\n....X.XX\n.....XXX\n");
}

TEST(Cli, MaskJsonIsBlockCsr) {
  const Result r = run("mask --out 256 --in 96 -n 8 -k 2 -b 16 --format json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j.size(), 6u);
  EXPECT_EQ(j["block_rows"], 16);
  EXPECT_EQ(j["block_cols"], 6);
  EXPECT_EQ(j["block"], 16);
  EXPECT_DOUBLE_EQ(j["density"].get<double>(), 0.5);
  const auto row_ptr = j["row_ptr"].get<std::vector<int64_t>>();
  const auto col_idx = j["col_idx"].get<std::vector<int64_t>>();
  ASSERT_EQ(row_ptr.size(), 17u);
  EXPECT_EQ(row_ptr.back(), 48);
  EXPECT_EQ(std::vector<int64_t>(col_idx.begin(), col_idx.begin() + 3), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(std::vector<int64_t>(col_idx.end() - 3, col_idx.end()), (std::vector<int64_t>{3, 4, 5}));
}

#ifdef PIXELFLY_HAVE_PNG
TEST(Cli, MaskPngWritesAPictureOfTheLayout) {
  const std::string path = ::testing::TempDir() + "/pixelfly_mask_test.png";
  std::remove(path.c_str());
  const Result r = run("mask --out 512 --in 256 -n 16 -k 2 -b 32 --format png --output " + path);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream file(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 33u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  // IHDR: 16 x 8 blocks at 32 pixels per block.
  auto be32 = [&](size_t at) {
    return (uint32_t(uint8_t(bytes[at])) << 24) | (uint32_t(uint8_t(bytes[at + 1])) << 16) |
           (uint32_t(uint8_t(bytes[at + 2])) << 8) | uint32_t(uint8_t(bytes[at + 3]));
  };
  EXPECT_EQ(be32(16), 8u * 32u);
  EXPECT_EQ(be32(20), 16u * 32u);
}
#endif

TEST(Cli, MaskRejectsBadParametersWithOneClearLine) {
  const Result r = run("mask --out 64 --in 64 -n 12 -k 2 -b 4");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.output, "pixelfly: error: butterfly_size must be a power of two >= 2, got 12\n");
  const Result png = run("mask --out 64 --in 64 -n 8 -k 2 -b 4 --format png");
  EXPECT_EQ(png.exit_code, 1);
  EXPECT_EQ(png.output, "pixelfly: error: --format png needs --output FILE.png\n");
  EXPECT_NE(run("mask --out 64 --in 64 --format svg").exit_code, 0);
}

TEST(Cli, PlanPrintsATableForShapesOnTheCommandLine) {
  const Result r = run("plan --layer fc1:mlp:3072x768 --layer fc2:mlp:768x3072 --layer head:head:1000x768 "
                       "--density mlp=0.25");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("fc1"), std::string::npos);
  EXPECT_NE(r.output.find("fc2"), std::string::npos);
  EXPECT_NE(r.output.find("dense"), std::string::npos);
  EXPECT_NE(r.output.find("total"), std::string::npos);
  const Result bad = run("plan --layer fc1:mlp:3072 --density mlp=0.25");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("must look like NAME:TYPE:OUTxIN"), std::string::npos);
  const Result bad_density = run("plan --layer fc1:mlp:64x64 --density mlp=lots");
  EXPECT_EQ(bad_density.exit_code, 1);
  EXPECT_NE(bad_density.output.find("'lots' is not a number"), std::string::npos);
}

TEST(Cli, PlanTakesAModelPreset) {
  const Result r = run("plan --model mixer-b16 --density mlp=0.25");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("blocks.0.channel_fc1"), std::string::npos);
  EXPECT_NE(r.output.find("blocks.11.channel_fc2"), std::string::npos);
  EXPECT_NE(r.output.find("3072x768"), std::string::npos);
  const Result gpt2 = run("plan --model gpt2-medium --density mlp=0.25");
  ASSERT_EQ(gpt2.exit_code, 0) << gpt2.output;
  EXPECT_NE(gpt2.output.find("blocks.23.mlp.fc1"), std::string::npos) << gpt2.output;
  EXPECT_NE(gpt2.output.find("4096x1024"), std::string::npos) << gpt2.output;
  EXPECT_NE(gpt2.output.find("blocks.0.attn.qkv"), std::string::npos) << gpt2.output;  // listed, kept dense
  const Result unknown = run("plan --model mixer-xl --density mlp=0.25");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.output.find("unknown model preset 'mixer-xl'; known: mixer-s16, mixer-b16, mixer-small28, vit-s16"),
            std::string::npos);
  const Result resnet = run("plan --model resnet50 --density mlp=0.25");
  EXPECT_EQ(resnet.exit_code, 1);
  EXPECT_NE(resnet.output.find("ResNet 'resnet50' has no Pixelfly layers"), std::string::npos) << resnet.output;
  const Result nothing = run("plan --density mlp=0.25");
  EXPECT_EQ(nothing.exit_code, 1);
  EXPECT_NE(nothing.output.find("give --model NAME or at least one --layer"), std::string::npos);
}

// A one-epoch run of 8 steps on 256 synthetic 1x28x28 images (a few seconds on one thread).
const std::string kTinyRun =
    "--set data.name=synthetic-images --set data.image_size=28 --set data.channels=1 --set data.synthetic_count=256 "
    "--set data.batch_size=32 --set data.eval_batch_size=128 --set data.augment=false --set data.prefetch=0 "
    "--set schedule.epochs=1 --set optim.lr=0.003 --set train.plots=false --set run.threads=1";

// The number after `label` in `text` (e.g. "accuracy 93.75 %" -> 93.75), or NaN.
double number_after(const std::string& text, const std::string& label) {
  const auto at = text.find(label);
  if (at == std::string::npos) return std::nan("");
  return std::strtod(text.c_str() + at + label.size(), nullptr);
}

TEST(Cli, TrainEvalAndPruneATinyRun) {
  TempDir dir;
  const std::string run_dir = dir / "run";
  const Result train = run("train " + kTinyRun + " --set run.dir=" + run_dir);
  ASSERT_EQ(train.exit_code, 0) << train.output;
  EXPECT_NE(train.output.find("run " + run_dir + ": 8 steps, 1 epochs, eval accuracy "), std::string::npos)
      << train.output;
  for (const char* file : {"config.json", "metrics.jsonl", "summary.json", "checkpoints/latest",
                           "checkpoints/step_00000008/model.safetensors"}) {
    EXPECT_TRUE(exists(run_dir + "/" + file)) << file;
  }
  const nlohmann::json summary = nlohmann::json::parse(read_bytes(run_dir + "/summary.json"));
  EXPECT_EQ(summary.at("finished"), true);
  const double accuracy = 100.0 * summary.at("eval_accuracy").get<double>();
  EXPECT_GT(accuracy, 50.0);

  const Result eval = run("eval " + run_dir);
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  EXPECT_NEAR(number_after(eval.output, "\naccuracy "), accuracy, 0.0051) << eval.output;
  EXPECT_NE(eval.output.find("(128 images)"), std::string::npos) << eval.output;

  const Result prune = run("prune " + run_dir + " --sparsities 0.5,0.9 --save-models");
  ASSERT_EQ(prune.exit_code, 0) << prune.output;
  EXPECT_NEAR(number_after(prune.output, "dense accuracy: "), accuracy, 0.0051) << prune.output;
  EXPECT_NE(prune.output.find("target   reached   accuracy   recalibrated"), std::string::npos) << prune.output;
  EXPECT_NE(prune.output.find("\n0.500    0.5000"), std::string::npos) << prune.output;
  EXPECT_NE(prune.output.find("\n0.900    0.9000"), std::string::npos) << prune.output;
  const std::string out_dir = run_dir + "/prune_global";
  const nlohmann::json rows = nlohmann::json::parse(read_bytes(out_dir + "/prune.json"));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].at("target_sparsity"), 0.5);
  EXPECT_EQ(rows[1].at("target_sparsity"), 0.9);
  EXPECT_NEAR(rows[1].at("reached_sparsity").get<double>(), 0.9, 1e-4);
  EXPECT_TRUE(rows[1].at("recalibrated_accuracy").is_null());
  const bool plotted = prune.output.find("prune.json and prune.png") != std::string::npos;
  EXPECT_EQ(exists(out_dir + "/prune.png"), plotted);
  if (::access("/usr/bin/gnuplot", X_OK) == 0) {
    EXPECT_TRUE(plotted) << prune.output;
  }
  EXPECT_TRUE(exists(out_dir + "/model_sparsity_0.50.safetensors"));
  ASSERT_TRUE(exists(out_dir + "/model_sparsity_0.90.safetensors"));

  // A saved compressed model evaluates to the accuracy the sweep reported for it.
  const Result pruned = run("eval " + out_dir + "/model_sparsity_0.90.safetensors");
  ASSERT_EQ(pruned.exit_code, 0) << pruned.output;
  // eval prints two decimals: rounding moves the value by at most 0.005 (plus float error).
  EXPECT_NEAR(number_after(pruned.output, "\naccuracy "), 100.0 * rows[1].at("accuracy").get<double>(), 0.0051)
      << pruned.output;
}

TEST(Cli, TrainStopsAndResumes) {
  TempDir dir;
  const std::string run_dir = dir / "run";
  const Result resume_nothing = run("train --resume " + run_dir);
  EXPECT_EQ(resume_nothing.exit_code, 1);
  EXPECT_EQ(resume_nothing.output, "pixelfly: error: '" + run_dir +
                                       "' is not inside a run directory (no config.json found in it or above it)\n");

  const Result stopped = run("train " + kTinyRun + " --set run.dir=" + run_dir + " --set train.max_steps=3");
  ASSERT_EQ(stopped.exit_code, 0) << stopped.output;
  EXPECT_NE(stopped.output.find("stopped after step 3 (train.max_steps); continue with: pixelfly train --resume " + run_dir +
                                     " --set train.max_steps=0"), std::string::npos)
      << stopped.output;
  const Result again = run("train " + kTinyRun + " --set run.dir=" + run_dir);
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.output.find("pixelfly: error: run directory '" + run_dir + "' already holds a run with checkpoints"),
            std::string::npos)
      << again.output;
  const Result resumed = run("train --resume " + run_dir + " --set train.max_steps=0");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resumed from " + run_dir + "/checkpoints/step_00000003 at step 3"), std::string::npos)
      << resumed.output;
  EXPECT_NE(resumed.output.find("run " + run_dir + ": 8 steps, 1 epochs"), std::string::npos) << resumed.output;
}

TEST(Cli, PruneRecalibratesBatchNormOfAResNet) {
  TempDir dir;
  const std::string run_dir = dir / "run";
  const Result train = run("train " + kTinyRun + " --set run.dir=" + run_dir +
                           " --set model.preset=resnet20 --set data.image_size=8 --set data.synthetic_count=128 "
                           "--set optim.name=sgd --set optim.lr=0.05");
  ASSERT_EQ(train.exit_code, 0) << train.output;
  const Result prune = run("prune " + run_dir +
                           " --sparsities 0.5,0.9 --bn-recalibrate --recalibration-images 64 --recalibration-batches 2");
  ASSERT_EQ(prune.exit_code, 0) << prune.output;
  const nlohmann::json rows = nlohmann::json::parse(read_bytes(run_dir + "/prune_global/prune.json"));
  ASSERT_EQ(rows.size(), 2u);
  for (const nlohmann::json& row : rows) {
    ASSERT_TRUE(row.at("recalibrated_accuracy").is_number()) << row.dump();
    EXPECT_GE(row.at("recalibrated_accuracy").get<double>(), 0.0);
    EXPECT_LE(row.at("recalibrated_accuracy").get<double>(), 1.0);
  }
  EXPECT_EQ(prune.output.find("     -     "), std::string::npos) << prune.output;  // no empty column
}

TEST(Cli, TrainRejectsBadSettingsWithOneClearLine) {
  TempDir dir;
  const std::string set_dir = " --set run.dir=" + (dir / "run");
  const Result lr = run("train" + set_dir + " --set optim.lr=abc");
  EXPECT_EQ(lr.exit_code, 1);
  EXPECT_EQ(lr.output, "pixelfly: error: --set optim.lr: 'optim.lr' must be a number, got \"abc\"\n");
  const Result key = run("train" + set_dir + " --set optim.lrr=0.1");
  EXPECT_EQ(key.exit_code, 1);
  EXPECT_EQ(key.output,
            "pixelfly: error: --set optim.lrr: unknown configuration key 'optim.lrr'; keys of 'optim': beta1, beta2, "
            "cram, eps, lr, momentum, name, nesterov, weight_decay\n");
  const Result range = run("train" + set_dir + " --set data.batch_size=0");
  EXPECT_EQ(range.exit_code, 1);
  EXPECT_EQ(range.output, "pixelfly: error: configuration 'data.batch_size' = 0: expected an integer > 0\n");
  const Result form = run("train --set optim.lr");
  EXPECT_EQ(form.exit_code, 1);
  EXPECT_EQ(form.output, "pixelfly: error: --set 'optim.lr' must look like KEY=VALUE, e.g. optim.lr=0.01\n");

  // A diverging run: a non-zero exit and the reason on the last line.
  const Result diverged = run("train " + kTinyRun + set_dir + " --set optim.name=sgd --set optim.lr=1000 "
                              "--set optim.momentum=0");
  EXPECT_EQ(diverged.exit_code, 1);
  EXPECT_NE(diverged.output.find("pixelfly: error: training stopped: non-finite loss ("), std::string::npos)
      << diverged.output;
}

TEST(Cli, BenchPrintsDenseAndPixelflyRows) {
  TempDir dir;
  const Result r = run("bench " + kTinyRun + " --set run.dir=" + (dir / "run") + " --steps 2 --warmup 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("variant"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("GFLOP/step"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\ndense "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\npixelfly "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("541130"), std::string::npos) << r.output;  // the dense model's parameters
}

TEST(Cli, EverySubcommandsHelpShowsAnExample) {
  for (const char* command : {"train", "eval", "prune", "bench", "mask", "plan"}) {
    const Result r = run(std::string(command) + " --help");
    EXPECT_EQ(r.exit_code, 0) << command;
    EXPECT_NE(r.output.find("Example"), std::string::npos) << command << ":\n" << r.output;
    EXPECT_NE(r.output.find("  pixelfly " + std::string(command) + " "), std::string::npos) << command;
  }
}

}  // namespace
