// CPU benchmark: Y = X W^T through pixelfly::block_sparse_linear (flat block butterfly layouts)
// against dense torch::matmul on the same machine, in the same run. Prints Google Benchmark's
// table, then a summary: speed-up over dense and speed-up x density ("efficiency per nonzero":
// 1.0 means each stored weight is used as fast as dense GEMM uses its weights).
//
//   build/bench/bench_cpu_block_sparse [--benchmark_min_time=0.5s]
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdio>
#include <map>
#include <string>

#include "pixelfly/ops/block_sparse_ops.h"
#include "pixelfly/pattern/flat_butterfly.h"

namespace {

using pixelfly::FlatButterflyParams;
using pixelfly::ops::Layout;

struct Config {
  int64_t features, tokens;
};
const Config kConfigs[] = {{1024, 512}, {1024, 4096}, {4096, 512}, {4096, 4096}};
// (n, k): densities 0.125, 0.1875, 0.25, 0.375, 0.5 at block 32.
const std::pair<int64_t, int64_t> kPatterns[] = {{16, 1}, {16, 2}, {8, 1}, {8, 2}, {4, 1}};
constexpr int64_t kBlock = 32;

std::string dense_name(const Config& c) {
  return "dense/d:" + std::to_string(c.features) + "/T:" + std::to_string(c.tokens);
}
std::string sparse_name(const Config& c, int64_t n, int64_t k) {
  return "pixelfly/d:" + std::to_string(c.features) + "/T:" + std::to_string(c.tokens) + "/n:" + std::to_string(n) +
         "/k:" + std::to_string(k);
}

void bench_dense(benchmark::State& state, Config c) {
  torch::NoGradGuard no_grad;
  const at::Tensor x = at::randn({c.tokens, c.features});
  const at::Tensor w = at::randn({c.features, c.features});
  for (auto _ : state) {
    at::Tensor y = torch::matmul(x, w.t());
    benchmark::DoNotOptimize(y.data_ptr<float>());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * c.tokens * c.features * c.features,
                                                 benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void bench_sparse(benchmark::State& state, Config c, int64_t n, int64_t k) {
  torch::NoGradGuard no_grad;
  const Layout layout = pixelfly::ops::make_layout(
      pixelfly::flat_butterfly_layout(FlatButterflyParams{c.features, c.features, n, k, kBlock}));
  const at::Tensor x = at::randn({c.tokens, c.features});
  const at::Tensor values = at::randn({layout->nnz(), kBlock, kBlock});
  for (auto _ : state) {
    at::Tensor y = pixelfly::ops::block_sparse_linear(x, values, layout);
    benchmark::DoNotOptimize(y.data_ptr<float>());
  }
  state.counters["density"] = layout->density();
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * c.tokens * layout->nnz() * kBlock * kBlock, benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
}

// Keeps the median real time of every benchmark for the summary.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type == Run::RT_Aggregate && run.aggregate_name == "median") {
        seconds_[run.run_name.function_name] = run.GetAdjustedRealTime() / 1e3;  // reported in ms
      }
    }
  }
  double seconds(const std::string& name) const {
    auto it = seconds_.find(name);
    return it == seconds_.end() ? 0.0 : it->second;
  }

 private:
  std::map<std::string, double> seconds_;
};

}  // namespace

int main(int argc, char** argv) {
  for (const Config& c : kConfigs) {
    auto setup = [](benchmark::internal::Benchmark* b) {
      b->Unit(benchmark::kMillisecond)->UseRealTime()->Repetitions(3)->ReportAggregatesOnly(true);
    };
    setup(benchmark::RegisterBenchmark(dense_name(c).c_str(), bench_dense, c));
    for (const auto& [n, k] : kPatterns) {
      setup(benchmark::RegisterBenchmark(sparse_name(c, n, k).c_str(), bench_sparse, c, n, k));
    }
  }
  benchmark::Initialize(&argc, argv);
  SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  std::printf("\nY = X W^T on CPU (%d threads), float32, flat block butterfly, block %lld\n", at::get_num_threads(),
              static_cast<long long>(kBlock));
  std::printf("%6s %6s %4s %2s %8s %10s %10s %8s %10s\n", "d", "tokens", "n", "k", "density", "dense ms", "ours ms",
              "speedup", "efficiency");
  for (const Config& c : kConfigs) {
    const double dense = reporter.seconds(dense_name(c));
    for (const auto& [n, k] : kPatterns) {
      const double ours = reporter.seconds(sparse_name(c, n, k));
      if (dense <= 0 || ours <= 0) continue;
      const double density = pixelfly::flat_butterfly_layout({c.features, c.features, n, k, kBlock}).density();
      std::printf("%6lld %6lld %4lld %2lld %8.4f %10.2f %10.2f %7.2fx %10.2f\n", static_cast<long long>(c.features),
                  static_cast<long long>(c.tokens), static_cast<long long>(n), static_cast<long long>(k), density,
                  dense * 1e3, ours * 1e3, dense / ours, density * dense / ours);
    }
  }
  benchmark::Shutdown();
  return 0;
}
