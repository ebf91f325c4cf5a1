// PixelflyLinear against torch::nn::Linear on the GPU: one forward + backward of each layer at
// the paper's MLP shapes, bf16, in the same process. Prints milliseconds per step (median of 7
// timed runs of 20 steps each, after warm-up) and the speed-up, twice: launched op by op from
// the host (eager), and replayed as a CUDA graph of 20 captured steps, which takes the host's
// launch time out of the number and leaves the GPU's.
//
//   build/bench/bench_pixelfly_linear
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include "pixelfly/nn/pixelfly_linear.h"

namespace {

constexpr int kStepsPerRun = 20;

// Median over 7 runs of the time per step of run(), which performs kStepsPerRun steps.
double median_run_ms(const std::function<void()>& run) {
  std::vector<double> runs;
  for (int r = 0; r < 7; ++r) {
    const auto start = std::chrono::steady_clock::now();
    run();
    torch::cuda::synchronize();
    runs.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
                   kStepsPerRun);
  }
  std::sort(runs.begin(), runs.end());
  return runs[runs.size() / 2];
}

double eager_step_ms(const std::function<void()>& step) {
  for (int i = 0; i < 10; ++i) step();
  torch::cuda::synchronize();
  return median_run_ms([&] {
    for (int i = 0; i < kStepsPerRun; ++i) step();
  });
}

// The steps captured once into a CUDA graph (after warm-up on the capturing stream), then
// replayed.
double graph_step_ms(const std::function<void()>& step) {
  const c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool();
  at::cuda::CUDAGraph graph;
  {
    const c10::cuda::CUDAStreamGuard guard(stream);
    for (int i = 0; i < 3; ++i) step();
    stream.synchronize();
    graph.capture_begin();
    for (int i = 0; i < kStepsPerRun; ++i) step();
    graph.capture_end();
  }
  graph.replay();
  torch::cuda::synchronize();
  return median_run_ms([&] { graph.replay(); });
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
  std::printf("%-18s %6s %6s %7s %8s  %-27s  %-27s\n", "", "", "", "", "", "eager (host launches)",
              "CUDA graph");
  std::printf("%-18s %6s %6s %7s %8s  %8s %9s %8s  %8s %9s %8s\n", "layer", "in", "out", "tokens", "density",
              "dense ms", "pixelfly", "speedup", "dense ms", "pixelfly", "speedup");
  for (const Shape& s : shapes) {
    torch::nn::Linear dense(s.in, s.out);
    dense->to(torch::kCUDA, torch::kBFloat16);
    pixelfly::nn::PixelflyLinear fly(
        pixelfly::nn::PixelflyLinearOptions(s.in, s.out).butterfly_size(16).factors(2).block(32).rank(32));
    fly->to(torch::kCUDA, torch::kBFloat16);
    const torch::Tensor x = torch::randn({s.tokens, s.in}, options).requires_grad_();
    const torch::Tensor grad = torch::randn({s.tokens, s.out}, options);
    // Each step starts with no gradients (as after zero_grad(set_to_none=True)), so backward
    // writes them rather than adding into last step's: x stands for an activation, whose
    // gradient nothing accumulates.
    const auto clear_gradients = [&](torch::nn::Module& layer) {
      x.mutable_grad().reset();
      for (torch::Tensor& p : layer.parameters()) p.mutable_grad().reset();
    };
    const auto dense_step = [&] {
      clear_gradients(*dense);
      dense->forward(x).backward(grad);
    };
    const auto fly_step = [&] {
      clear_gradients(*fly);
      fly->forward(x).backward(grad);
    };
    const double dense_ms = eager_step_ms(dense_step), fly_ms = eager_step_ms(fly_step);
    const double dense_graph_ms = graph_step_ms(dense_step), fly_graph_ms = graph_step_ms(fly_step);
    const double density = static_cast<double>(fly->parameter_count()) / fly->dense_parameter_count();
    std::printf("%-18s %6lld %6lld %7lld %8.3f  %8.3f %9.3f %7.2fx  %8.3f %9.3f %7.2fx\n", s.name,
                static_cast<long long>(s.in), static_cast<long long>(s.out), static_cast<long long>(s.tokens), density,
                dense_ms, fly_ms, dense_ms / fly_ms, dense_graph_ms, fly_graph_ms, dense_graph_ms / fly_graph_ms);
  }
  return 0;
}
