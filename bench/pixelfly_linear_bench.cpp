// PixelflyLinear against torch::nn::Linear on the GPU: one forward + backward of each layer at
// the paper's MLP shapes, bf16, in the same process. Prints milliseconds per step (median of 7
// timed runs of 20 steps each, after warm-up) and the speed-up.
//
//   build/bench/bench_pixelfly_linear
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "pixelfly/nn/pixelfly_linear.h"

namespace {

double median_step_ms(const std::function<void()>& step) {
  for (int i = 0; i < 10; ++i) step();
  torch::cuda::synchronize();
  std::vector<double> runs;
  for (int r = 0; r < 7; ++r) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 20; ++i) step();
    torch::cuda::synchronize();
    runs.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / 20);
  }
  std::sort(runs.begin(), runs.end());
  return runs[runs.size() / 2];
}

struct Shape {
  const char* name;
  int64_t in, out, tokens;
};

}  // namespace

int main() {
  if (!torch::cuda::is_available()) {
    std::printf("bench_pixelfly_linear: no CUDA device on this machine\n");
    return 0;
  }
  torch::manual_seed(0);
  const auto options = torch::TensorOptions(torch::kCUDA).dtype(torch::kBFloat16);
  const Shape shapes[] = {{"Mixer-B fc1", 768, 3072, 25088},
                          {"Mixer-B fc2", 3072, 768, 25088},
                          {"GPT-2-medium fc1", 1024, 4096, 8192},
                          {"GPT-2-medium fc2", 4096, 1024, 8192}};
  std::printf("%-18s %6s %6s %7s %9s %12s %14s %8s\n", "layer", "in", "out", "tokens", "density", "dense ms", "pixelfly ms",
              "speedup");
  for (const Shape& s : shapes) {
    torch::nn::Linear dense(s.in, s.out);
    dense->to(torch::kCUDA, torch::kBFloat16);
    pixelfly::nn::PixelflyLinear fly(
        pixelfly::nn::PixelflyLinearOptions(s.in, s.out).butterfly_size(16).factors(2).block(32).rank(32));
    fly->to(torch::kCUDA, torch::kBFloat16);
    const torch::Tensor x = torch::randn({s.tokens, s.in}, options).requires_grad_();
    const torch::Tensor grad = torch::randn({s.tokens, s.out}, options);
    const double dense_ms = median_step_ms([&] { dense->forward(x).backward(grad); });
    const double fly_ms = median_step_ms([&] { fly->forward(x).backward(grad); });
    const double density = static_cast<double>(fly->parameter_count()) / fly->dense_parameter_count();
    std::printf("%-18s %6lld %6lld %7lld %9.3f %12.3f %14.3f %7.2fx\n", s.name, static_cast<long long>(s.in),
                static_cast<long long>(s.out), static_cast<long long>(s.tokens), density, dense_ms, fly_ms,
                dense_ms / fly_ms);
  }
  return 0;
}
