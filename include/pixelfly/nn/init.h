// Initialisation of Pixelfly weights (spec/pixelfly.md section 3).
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>

#include "pixelfly/pattern/block_layout.h"

namespace pixelfly::nn {

enum class LowRankInit {
  Svd,      // truncated SVD of a dense nn.Linear-initialised matrix: U = U_r sqrt(S_r), V = V_r sqrt(S_r)
  Kaiming,  // the first release: each factor kaiming-uniform (a = sqrt(5)) on its own
};

// Fills blocks (nnz, b, b) uniformly in +-bound_p per block row p, where
// bound_p = (1 / sqrt(I')) * sqrt(block_cols / nonzero blocks in row p) and I' is the padded
// in_features: each output keeps the variance of a dense nn.Linear. When every row has the same
// count this is the released +-(1/sqrt(I')) / sqrt(density).
void init_blocks_row_scaled(at::Tensor& blocks, const BlockLayout& layout);

// U (out x rank) and V (in x rank), so that U V^T approximates a dense nn.Linear weight.
std::pair<at::Tensor, at::Tensor> init_low_rank_factors(int64_t out_features, int64_t in_features,
                                                        int64_t rank, LowRankInit init,
                                                        const at::TensorOptions& options);

// nn.Linear's bias init: uniform in +-1/sqrt(in_features).
at::Tensor init_linear_bias(int64_t out_features, int64_t in_features, const at::TensorOptions& options);

}  // namespace pixelfly::nn
