// N:M semi-structured pruning, grouped along input channels.
#include "pixelfly/compress/n_m.h"

#include <ATen/ATen.h>

#include <numeric>

namespace pixelfly::compress {

NMCompressor::NMCompressor(int64_t n, int64_t m) : n_(n), m_(m) {
  TORCH_CHECK(m >= 1 && n >= 1 && n <= m, "N:M pruning needs 1 <= N <= M, got ", n, ":", m);
}

MaskMap NMCompressor::masks(const std::vector<NamedWeight>& weights) const {
  MaskMap out;
  for (const NamedWeight& w : weights) {
    const at::Tensor& weight = w.weight;
    TORCH_CHECK(weight.dim() >= 2, "N:M pruning: weight '", w.name, "' must have two or more dimensions, got ",
                weight.sizes());
    TORCH_CHECK(weight.size(1) % m_ == 0, "N:M pruning: weight '", w.name, "' has ", weight.size(1),
                " input channels, not divisible by M = ", m_);
    // Input channels last: (out, kh, kw, ..., in).
    std::vector<int64_t> order(weight.dim());
    std::iota(order.begin(), order.end(), 0);
    order.erase(order.begin() + 1);
    order.push_back(1);
    const at::Tensor grouped = weight.detach().abs().to(at::kFloat).permute(order).contiguous();
    const at::Tensor groups = grouped.view({-1, m_});
    // Stable descending sort inside each group of M: the first N are kept, ties by position.
    const at::Tensor rank = std::get<1>(groups.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true));
    at::Tensor keep = at::zeros_like(groups, groups.options().dtype(at::kBool));
    keep.scatter_(1, rank.narrow(1, 0, n_), true);
    std::vector<int64_t> inverse(order.size());
    for (size_t i = 0; i < order.size(); ++i) inverse[order[i]] = static_cast<int64_t>(i);
    out[w.name] = keep.view(grouped.sizes()).permute(inverse).contiguous();
  }
  return out;
}

std::string NMCompressor::describe() const { return std::to_string(n_) + ":" + std::to_string(m_) + " semi-structured"; }

}  // namespace pixelfly::compress
