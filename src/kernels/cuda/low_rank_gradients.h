// The two products of PixelflyLinear's backward that read the whole output gradient dy against
// the low-rank factors, computed in one pass over dy on Hopper:
//   grad_projected  = dy u                  tokens x rank, the storage type (dx's low-rank term,
//                                           and the input of v's gradient x^T (dy u))
//   product        += dy^T [projected | 1]  out x width, float32 (u's gradient; with width =
//                                           rank + 8, eight columns of dy's sums over the tokens
//                                           after it: the bias gradient)
// Row-major matrices of one 16-bit type: dy (tokens x out) and u (out x rank) contiguous,
// projected (tokens x rank) with `projected_pitch` elements from one row to the next (a multiple
// of 8, at least rank); the ones are made in registers, not read. Plain parameter struct, no
// LibTorch types.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/block_sparse_cuda.h"

namespace pixelfly::kernels::cuda {

struct LowRankGradients {
  ScalarKind kind = ScalarKind::BFloat16;  // float16 or bfloat16
  int64_t tokens = 0, out_features = 0, rank = 0, width = 0, projected_pitch = 0;
  const void* grad_y = nullptr;
  const void* u = nullptr;
  const void* projected = nullptr;
  void* grad_projected = nullptr;
  float* product = nullptr;  // zeroed by the caller: the pass adds into it
};

// True when the one-pass kernel runs these shapes on the current device: a 16-bit type, Hopper,
// out_features a multiple of 8, rank a multiple of 8, width rank or rank + 8 and at most 40.
bool supports_low_rank_gradients(ScalarKind kind, int64_t out_features, int64_t rank, int64_t width);
// float32 scratch the pass needs beside `product`, zeroed by the caller before the launch.
int64_t low_rank_gradients_scratch_elements(int64_t tokens, int64_t out_features, int64_t rank, int64_t width);
cudaError_t low_rank_gradients(const LowRankGradients& p, float* scratch, cudaStream_t stream);

}  // namespace pixelfly::kernels::cuda
