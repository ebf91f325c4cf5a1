// One-shot sweep on a small trained model: rows per level, exact sparsities, recalibration
// evaluated, the model restored afterwards, and the JSON and plot outputs.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <fstream>
#include <iterator>

#include "pixelfly/compress/batch_norm_recalibration.h"
#include "pixelfly/compress/magnitude.h"
#include "pixelfly/compress/one_shot_sweep.h"

namespace pixelfly::compress {
namespace {

struct Classifier : torch::nn::Module {
  Classifier() {
    fc = register_module("fc", torch::nn::Linear(10, 32));
    bn = register_module("bn", torch::nn::BatchNorm1d(32));
    out = register_module("out", torch::nn::Linear(32, 2));
  }
  at::Tensor forward(const at::Tensor& x) { return out(torch::relu(bn(fc(x)))); }
  torch::nn::Linear fc{nullptr}, out{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};
};

TEST(OneShotSweep, EvaluatesEveryLevelAndRestoresTheModel) {
  torch::manual_seed(0);
  // Two Gaussian blobs in 10-D.
  const at::Tensor labels = at::randint(0, 2, {512}, at::kLong);
  const at::Tensor data = at::randn({512, 10}) + (labels.to(at::kFloat).unsqueeze(1) * 2 - 1) * 1.5;
  Classifier net;
  torch::optim::SGD sgd(net.parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  net.train();
  for (int step = 0; step < 100; ++step) {
    sgd.zero_grad();
    torch::nn::functional::cross_entropy(net.forward(data), labels).backward();
    sgd.step();
  }
  auto accuracy = [&] {
    torch::NoGradGuard no_grad;
    return net.forward(data).argmax(1).eq(labels).to(at::kFloat).mean().item<double>();
  };
  net.eval();
  const double dense_accuracy = accuracy();
  ASSERT_GT(dense_accuracy, 0.9);
  std::vector<at::Tensor> before;
  for (const auto& p : net.named_parameters()) before.push_back(p.value().detach().clone());
  for (const auto& b : net.named_buffers()) before.push_back(b.value().clone());

  const auto weights = compressible_weights(net, {});
  RecalibrationOptions recal;
  recal.subset_size = 256;
  recal.batches = 10;
  recal.batch_size = 64;
  const auto rows = one_shot_sweep(
      net, weights, [](double s) { return std::make_shared<UniformMagnitude>(s); }, {0.0, 0.5, 0.95}, accuracy,
      [&] {
        recalibrate_batch_norm(
            net, 512, [&](const std::vector<int64_t>& idx) { return data.index_select(0, at::tensor(idx)); },
            [&](const at::Tensor& x) { net.forward(x); }, recal);
      });
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_DOUBLE_EQ(rows[0].accuracy, dense_accuracy);
  EXPECT_EQ(rows[0].kept, rows[0].total);
  EXPECT_EQ(rows[1].total, 10 * 32 + 32 * 2);
  EXPECT_EQ(rows[1].kept, 160 + 32);  // ceil(320 * 0.5) + ceil(64 * 0.5)
  EXPECT_NEAR(rows[2].reached_sparsity, 0.95, 0.01);
  EXPECT_TRUE(rows[2].recalibrated_accuracy.has_value());
  EXPECT_LT(rows[2].accuracy, dense_accuracy + 1e-12);
  EXPECT_EQ(rows[2].compressor, "uniform magnitude, sparsity 0.95");

  // The model is as it was.
  size_t i = 0;
  for (const auto& p : net.named_parameters()) EXPECT_TRUE(at::equal(p.value(), before[i++])) << p.key();
  for (const auto& b : net.named_buffers()) EXPECT_TRUE(at::equal(b.value(), before[i++])) << b.key();
  EXPECT_FALSE(net.is_training());

  const nlohmann::json j = nlohmann::json::parse(sweep_json(rows));
  ASSERT_EQ(j.size(), 3u);
  EXPECT_DOUBLE_EQ(j[1]["target_sparsity"].get<double>(), 0.5);
  EXPECT_TRUE(j[1].contains("recalibrated_accuracy"));
  EXPECT_NE(sweep_table(rows).find("0.950"), std::string::npos);

  const std::string png = ::testing::TempDir() + "/pixelfly_sweep_test.png";
  std::remove(png.c_str());
  if (write_sweep_plot(rows, png)) {
    std::ifstream file(png, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    ASSERT_GT(bytes.size(), 8u);
    EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  }
}

}  // namespace
}  // namespace pixelfly::compress
