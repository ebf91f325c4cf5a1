// Host-side construction of TMA tensor maps (the descriptors Hopper's tensor memory accelerator
// copies through) for row-major 16-bit and float32 matrices. The driver's encoder is looked up once through
// the runtime, so nothing links against libcuda directly.
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace pixelfly::kernels::cuda {

// A rows x cols matrix of 16-bit elements (float16 or bfloat16, `bfloat16` says which) starting
// at `base`, `pitch` elements from one row to the next, copied in boxes of box_rows x box_cols
// elements landing in shared memory with `swizzle_bytes` swizzling (0, 32, 64 or 128; box_cols * 2
// may not exceed it). Elements outside the matrix read as zero and are never written.
// Returns cudaErrorInvalidValue when the driver rejects the description (base not 16-byte
// aligned, pitch not a multiple of 8 elements, ...).
cudaError_t encode_tensor_map(CUtensorMap* map, const void* base, bool bfloat16, int64_t rows, int64_t cols,
                              int64_t pitch, int box_rows, int box_cols, int swizzle_bytes);

// The same for a float32 matrix (pitch a multiple of 4 elements; box_cols * 4 may not exceed a
// swizzle), for TMA stores and reductions into float32 sums.
cudaError_t encode_float32_tensor_map(CUtensorMap* map, const float* base, int64_t rows, int64_t cols, int64_t pitch,
                                      int box_rows, int box_cols, int swizzle_bytes);

}  // namespace pixelfly::kernels::cuda
