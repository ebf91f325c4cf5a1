// Global and layer-wise magnitude pruning with exact counts.
#include "pixelfly/compress/magnitude.h"

#include <ATen/ATen.h>

#include <cmath>
#include <sstream>

namespace pixelfly::compress {

int64_t kept_count(int64_t n, double sparsity) {
  TORCH_CHECK(sparsity >= 0.0 && sparsity < 1.0, "sparsity must be in [0, 1), got ", sparsity);
  return std::min<int64_t>(n, static_cast<int64_t>(std::ceil(static_cast<double>(n) * (1.0 - sparsity) - 1e-9)));
}

namespace {

// Keeps what is above the k-th largest and, of the entries equal to it, the first ones by index.
at::Tensor keep_above_and_first_ties(const at::Tensor& scores, const at::Tensor& kth, int64_t k) {
  at::Tensor keep = scores > kth;
  const int64_t above = keep.sum().item<int64_t>();
  const at::Tensor ties = scores == kth;
  return keep | (ties & (ties.cumsum(0) <= (k - above)));
}

}  // namespace

at::Tensor keep_largest(const at::Tensor& scores, int64_t k) {
  TORCH_CHECK(scores.dim() == 1, "keep_largest: scores must be 1-D, got ", scores.sizes());
  const int64_t n = scores.numel();
  if (k >= n) return at::ones({n}, scores.options().dtype(at::kBool));
  if (k <= 0) return at::zeros({n}, scores.options().dtype(at::kBool));
  if (scores.is_cuda()) {
    // CUDA's kthvalue runs one thread block per slice: 185 ms for ResNet-50's 25.5 M weights on
    // an H200, where an unsorted topk (a multi-block radix selection) takes 0.6 ms
    // (bench/topk_selection_probe.py). The k-th largest is the smallest of the top k.
    return keep_above_and_first_ties(scores, std::get<0>(at::topk(scores, k, 0, true, false)).min(), k);
  }
  // The k-th largest is the (n - k + 1)-th smallest.
  return keep_above_and_first_ties(scores, std::get<0>(at::kthvalue(scores, n - k + 1)), k);
}

GlobalMagnitude::GlobalMagnitude(double sparsity) : sparsity_(sparsity) { kept_count(1, sparsity); }

MaskMap GlobalMagnitude::masks(const std::vector<NamedWeight>& weights) const {
  std::vector<at::Tensor> magnitudes;
  int64_t total = 0;
  for (const NamedWeight& w : weights) {
    magnitudes.push_back(w.weight.detach().abs().to(at::kFloat).flatten());
    total += w.weight.numel();
  }
  MaskMap out;
  if (weights.empty()) return out;
  const at::Tensor keep = keep_largest(at::cat(magnitudes), kept_count(total, sparsity_));
  int64_t offset = 0;
  for (const NamedWeight& w : weights) {
    out[w.name] = keep.narrow(0, offset, w.weight.numel()).view(w.weight.sizes());
    offset += w.weight.numel();
  }
  return out;
}

std::string GlobalMagnitude::describe() const {
  std::ostringstream s;
  s << "global magnitude, sparsity " << sparsity_;
  return s.str();
}

UniformMagnitude::UniformMagnitude(double sparsity) : sparsity_(sparsity) { kept_count(1, sparsity); }

MaskMap UniformMagnitude::masks(const std::vector<NamedWeight>& weights) const {
  MaskMap out;
  for (const NamedWeight& w : weights) {
    const at::Tensor magnitude = w.weight.detach().abs().to(at::kFloat).flatten();
    out[w.name] = keep_largest(magnitude, kept_count(w.weight.numel(), sparsity_)).view(w.weight.sizes());
  }
  return out;
}

std::string UniformMagnitude::describe() const {
  std::ostringstream s;
  s << "uniform magnitude, sparsity " << sparsity_;
  return s.str();
}

}  // namespace pixelfly::compress
