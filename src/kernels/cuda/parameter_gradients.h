// The last pass of PixelflyLinear's backward on CUDA: from the raw products of the parameter
// gradients to the gradients themselves, in one launch. With g the mix:
//   grad_values = g * dW                (dW: float32 sums of dY^T X on the blocks)
//   grad_u      = (1 - g) * P[:, :r]    (P = dY^T [X v | 1 ...], out x pitch, float32)
//   grad_bias   = P[:, r]               (when a bias is trained: the ones column's sums)
//   grad_v      = (1 - g) * V           (V = X^T (dY u), in x r: the sum of v_partials float32
//                                        partial sums, one per token range, laid one after another)
//   grad_g      = <dW, values> - <P[:, :r], u>   (float32 sums, written in g's type)
// With mix_logit the scalar at `mix` is the logit l of g = sigmoid(l), and grad_mix is l's
// gradient, grad_g * g (1 - g).
// The two dot products are summed per thread block, then by the last block to finish, in a
// fixed order, so the result does not depend on scheduling.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/block_sparse_cuda.h"

namespace pixelfly::kernels::cuda {

// The most partial sums of V the pass adds (it loads an element's partial sums all at once).
constexpr int64_t kMaxVPartials = 8;

struct ParameterGradients {
  ScalarKind kind = ScalarKind::BFloat16;  // of values, u and every gradient but grad_g: 16-bit
  const void* mix = nullptr;               // g, a scalar of mix_kind
  ScalarKind mix_kind = ScalarKind::Float32;
  bool mix_logit = false;                  // mix holds g's logit
  int64_t weight_elements = 0;             // nnz * b * b (a multiple of 4)
  const float* weight_sums = nullptr;      // dW, 16-byte aligned
  const void* values = nullptr;            // values and grad_values 8-byte aligned
  void* grad_values = nullptr;
  int64_t out_features = 0, rank = 0;
  const float* product = nullptr;          // P
  int64_t product_pitch = 0;               // elements from one row of P to the next
  const void* u = nullptr;                 // out x rank, contiguous
  void* grad_u = nullptr;
  void* grad_bias = nullptr;               // null: no bias
  int64_t v_elements = 0;                  // in_features * rank
  const float* v_sums = nullptr;           // V's partial sums, each contiguous, v_elements apart
  int64_t v_partials = 1;                  // 1 to kMaxVPartials
  void* grad_v = nullptr;
  void* grad_mix = nullptr;                // a scalar of mix_kind (the logit's gradient with mix_logit)
};

// float32 scratch the pass needs (zeroed by the caller before the launch).
int64_t parameter_gradients_scratch_elements();
cudaError_t finish_parameter_gradients(const ParameterGradients& p, float* scratch, cudaStream_t stream);

}  // namespace pixelfly::kernels::cuda
