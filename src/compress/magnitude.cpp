// Global and layer-wise magnitude pruning with exact counts.
#include "pixelfly/compress/magnitude.h"

#include <ATen/ATen.h>

#include <cmath>
#include <sstream>
#include <vector>

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

at::Tensor keep_largest_by_bisection(const at::Tensor& scores, int64_t k) {
  TORCH_CHECK(scores.dim() == 1 && scores.scalar_type() == at::kFloat,
              "keep_largest_by_bisection: scores must be 1-D float32, got ", scores.scalar_type(), " ", scores.sizes());
  const int64_t n = scores.numel();
  if (k >= n) return at::ones({n}, scores.options().dtype(at::kBool));
  if (k <= 0) return at::zeros({n}, scores.options().dtype(at::kBool));
  // Integer keys in the order of the values: the float's bits for values >= 0, their mirror
  // below zero for negative values (-0.0 first becomes +0.0 so that equal values get one key).
  const at::Tensor bits = (scores + 0.0f).contiguous().view(at::kInt).to(at::kLong);
  const at::Tensor keys = at::where(bits >= 0, bits, -(bits.bitwise_and(0x7fffffff)) - 1);
  // The k-th largest key: the largest t with #(keys >= t) >= k. Each pass splits the interval
  // that holds t 16 ways and counts the keys per part (one host synchronisation per pass, eight
  // passes for 32-bit keys).
  int64_t low = -(int64_t{1} << 31);  // #(keys >= low) = n >= k
  int64_t span = int64_t{1} << 32;    // t lies in [low, low + span)
  while (span > 1) {
    const int64_t step = (span + 15) / 16;
    std::vector<int64_t> bounds;
    for (int64_t t = low + step; t < low + span; t += step) bounds.push_back(t);
    const at::Tensor parts = at::bucketize(keys, at::tensor(bounds, keys.options()), /*out_int32=*/true, /*right=*/true);
    const at::Tensor counts = at::bincount(parts, {}, static_cast<int64_t>(bounds.size()) + 1).cpu();
    const int64_t* count = counts.data_ptr<int64_t>();
    // Keys in part j + 1 and above are >= bounds[j].
    int64_t at_or_above = 0, chosen = -1;
    for (int64_t j = static_cast<int64_t>(bounds.size()) - 1; j >= 0 && chosen < 0; --j) {
      at_or_above += count[j + 1];
      if (at_or_above >= k) chosen = j;
    }
    const int64_t end = low + span;
    if (chosen < 0) {
      span = bounds.empty() ? span : bounds.front() - low;
    } else {
      low = bounds[chosen];
      span = (chosen + 1 < static_cast<int64_t>(bounds.size()) ? bounds[chosen + 1] : end) - low;
    }
  }
  return keep_above_and_first_ties(keys, at::scalar_tensor(low, keys.options()), k);
}

at::Tensor keep_largest(const at::Tensor& scores, int64_t k) {
  TORCH_CHECK(scores.dim() == 1, "keep_largest: scores must be 1-D, got ", scores.sizes());
  const int64_t n = scores.numel();
  if (k >= n) return at::ones({n}, scores.options().dtype(at::kBool));
  if (k <= 0) return at::zeros({n}, scores.options().dtype(at::kBool));
  // CUDA's kthvalue runs one thread block per slice: 25 M weights take a fifth of a second.
  if (scores.is_cuda() && scores.scalar_type() == at::kFloat) return keep_largest_by_bisection(scores, k);
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
