// CUDA kernels for block-sparse products, Y = X W^T, dX = dY W and dW = dY^T X on the nonzero
// blocks: plain parameter structs in, no LibTorch types, so this target compiles wherever nvcc
// does. Float32 accumulation for every storage type. Block sizes 16, 32, 64 and 128.
//
// This is the first, straightforward tiled version (shared-memory tiles, CUDA cores): correct
// for any token count and shape, with every output element written exactly once.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace pixelfly::kernels::cuda {

enum class ScalarKind { Float32, Float16, BFloat16 };

// The layout's indexes, all in device memory (built once per layout and device).
struct DeviceLayout {
  int64_t out_features = 0;
  int64_t in_features = 0;
  int64_t block = 0;
  int64_t block_rows = 0;
  int64_t block_cols = 0;
  int64_t nnz = 0;
  const int64_t* row_ptr = nullptr;          // block_rows + 1
  const int64_t* col_idx = nullptr;          // nnz
  const int64_t* col_ptr = nullptr;          // block_cols + 1
  const int64_t* row_idx = nullptr;          // nnz, transpose order
  const int64_t* transpose_block = nullptr;  // nnz, transpose order -> CSR block index
  const int64_t* block_row = nullptr;        // nnz, CSR order -> block row
};

bool supports_block(int64_t block);

// y (tokens x out) = x (tokens x in) . W^T; values (nnz, b, b). Row-major, contiguous.
cudaError_t forward(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* x,
                    const void* values, void* y, cudaStream_t stream);
// dx (tokens x in) = dy (tokens x out) . W.
cudaError_t grad_input(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy,
                       const void* values, void* dx, cudaStream_t stream);
// grad_values (nnz, b, b) = dy^T . x on the nonzero blocks (zeros in padding).
cudaError_t grad_weight(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy,
                        const void* x, void* grad_values, cudaStream_t stream);

}  // namespace pixelfly::kernels::cuda
