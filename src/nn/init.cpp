// Initialisation of block-sparse and low-rank weights (spec/pixelfly.md section 3).
#include "pixelfly/nn/init.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>

namespace pixelfly::nn {

void init_blocks_row_scaled(at::Tensor& blocks, const BlockLayout& layout) {
  at::NoGradGuard no_grad;
  const double padded_in = static_cast<double>(layout.block_cols() * layout.block());
  for (int64_t r = 0; r < layout.block_rows(); ++r) {
    const int64_t count = layout.row_count(r);
    if (count == 0) continue;
    const double bound = std::sqrt(static_cast<double>(layout.block_cols()) / count) / std::sqrt(padded_in);
    blocks.narrow(0, layout.row_ptr()[r], count).uniform_(-bound, bound);
  }
}

std::pair<at::Tensor, at::Tensor> init_low_rank_factors(int64_t out_features, int64_t in_features,
                                                        int64_t rank, LowRankInit init,
                                                        const at::TensorOptions& options) {
  TORCH_CHECK(rank >= 1 && rank <= std::min(out_features, in_features),
              "low-rank rank must be in [1, min(out_features, in_features)] = [1, ",
              std::min(out_features, in_features), "], got ", rank);
  at::NoGradGuard no_grad;
  if (init == LowRankInit::Kaiming) {
    const double bound_v = 1.0 / std::sqrt(static_cast<double>(in_features));
    const double bound_u = 1.0 / std::sqrt(static_cast<double>(rank));
    return {at::empty({out_features, rank}, options).uniform_(-bound_u, bound_u),
            at::empty({in_features, rank}, options).uniform_(-bound_v, bound_v)};
  }
  // nn.Linear's default (kaiming-uniform, a = sqrt(5)) is uniform in +-1/sqrt(in).
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  const at::Tensor dense =
      at::empty({out_features, in_features}, options.dtype(at::kDouble).device(at::kCPU)).uniform_(-bound, bound);
  auto [u, s, vh] = at::linalg_svd(dense, /*full_matrices=*/false);
  const at::Tensor root = s.narrow(0, 0, rank).sqrt();
  at::Tensor u_r = u.narrow(1, 0, rank) * root;
  at::Tensor v_r = vh.narrow(0, 0, rank).t() * root;
  // Explicit dtype and device: options without a dtype mean the default dtype, not float64.
  const auto target = at::TensorOptions().dtype(options.dtype()).device(options.device());
  return {u_r.to(target).contiguous(), v_r.to(target).contiguous()};
}

at::Tensor init_linear_bias(int64_t out_features, int64_t in_features, const at::TensorOptions& options) {
  at::NoGradGuard no_grad;
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  return at::empty({out_features}, options).uniform_(-bound, bound);
}

}  // namespace pixelfly::nn
