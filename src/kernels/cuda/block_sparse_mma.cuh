// Tensor-core (mma.sync m16n8k16, float32 accumulation) kernels for float16/bfloat16
// block-sparse products; used by block_sparse_cuda.cu when every feature count is a multiple
// of 8 (so each 16-byte load lies wholly inside or outside the matrix).
#pragma once

#include "kernels/cuda/block_sparse_cuda.h"

namespace pixelfly::kernels::cuda::mma {

bool applies(const DeviceLayout& layout, ScalarKind kind);
// forward / grad_input with the optional scale, low-rank term and bias of `epilogue`.
cudaError_t forward(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* x, const void* values,
                    const Epilogue& epilogue, void* y, cudaStream_t stream);
cudaError_t grad_input(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy,
                       const void* values, const Epilogue& epilogue, void* dx, cudaStream_t stream);
// Accumulates into `workspace` (float32, nnz * b * b, zeroed here) with split-K over tokens,
// then converts into grad_values.
cudaError_t grad_weight(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy, const void* x,
                        void* grad_values, float* workspace, cudaStream_t stream);

}  // namespace pixelfly::kernels::cuda::mma
