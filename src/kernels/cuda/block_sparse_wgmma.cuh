// Hopper warpgroup-MMA (wgmma, sm_90a) kernels for float16/bfloat16 block-sparse products, used
// by block_sparse_cuda.cu when the library was built for sm_90a and runs on a compute-capability
// 9.0 device, the feature counts are multiples of 8 and the layout's tile schedule is on the
// device (the caller checks all of that).
#pragma once

#include "kernels/cuda/block_sparse_cuda.h"

namespace pixelfly::kernels::cuda::wgmma {

// True when these kernels were compiled (an sm_90a target) and the current device is Hopper.
bool available();
// forward / grad_input with the optional mix, low-rank term and bias of `epilogue`, the tiles
// over thread blocks in `order` (line_tile_order; null: round-robin).
cudaError_t forward(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* x, const void* values,
                    const Epilogue& epilogue, void* y, const int32_t* order, cudaStream_t stream);
cudaError_t grad_input(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy,
                       const void* values, const Epilogue& epilogue, void* dx, const int32_t* order,
                       cudaStream_t stream);
// dY^T . X on the nonzero blocks (nnz * b * b), the token reduction split over thread blocks.
// When grad_weight_stored_once() (each piece's splits fit one thread-block cluster, summed in
// its shared memory), the result is stored once: into `values` (the storage type) when it is not
// null, else into `sums` (float32). Otherwise each split adds into `sums`, zeroed by the caller,
// and, with `fold` or `low_rank` (at most one; not null only where the splits add into `sums`,
// low_rank only with narrow pieces), their products into their sums.
bool grad_weight_stored_once(const DeviceLayout& layout, int64_t tokens);
cudaError_t grad_weight(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy, const void* x,
                        void* values, float* sums, const GradientFold* fold, const GradientLowRank* low_rank,
                        cudaStream_t stream);

}  // namespace pixelfly::kernels::cuda::wgmma
