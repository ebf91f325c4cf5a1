// CUDA kernels for block-sparse linear products (see block_sparse_cuda.h): the entry points
// route float16/bfloat16 to the Hopper tensor-core kernels (block_sparse_wgmma.cu) where they
// apply; this file holds the plain kernels for everything else:
// forward / grad_input: one thread block per (64-token tile, block row of the output); it walks
// that row's nonzero blocks (forward: the CSR row; grad_input: the layout's transpose index),
// staging a 64 x 32 slice of the activations and a B x 32 slice of the weight block in shared
// memory per step. grad_weight: one thread block per nonzero block, reducing over all tokens
// in steps of 32.
#include "kernels/cuda/block_sparse_cuda.h"

#include "kernels/cuda/block_sparse_wgmma.cuh"
#include "kernels/cuda/device_primitives.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

namespace pixelfly::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTokenTile = 64;  // tokens per thread block in forward / grad_input
constexpr int kChunk = 32;      // inner-dimension slice staged in shared memory (at most B)
constexpr int kReduceTile = 32; // tokens per step in grad_weight

using device::to_float;
using device::from_float;

// out[m, o*B + j] = sum over the output block row's nonzero blocks of
//   in[m, c*B + i] * W(i, j), with W(i, j) = blk[j][i] (forward) or blk[i][j] (grad_input).
template <typename T, int B, bool kTransposed>
__global__ void __launch_bounds__(kThreads)
    row_product_kernel(DeviceLayout layout, int64_t tokens, const T* __restrict__ in, const T* __restrict__ values,
                       T* __restrict__ out) {
  constexpr int kPerThread = kTokenTile * B / kThreads;
  constexpr int kRowStride = kThreads / B;
  constexpr int C = B < kChunk ? B : kChunk;
  __shared__ float in_tile[kTokenTile][C + 1];
  __shared__ float w_tile[B][C + 1];

  const int64_t out_block = blockIdx.y;
  const int64_t token0 = static_cast<int64_t>(blockIdx.x) * kTokenTile;
  const int64_t in_features = kTransposed ? layout.out_features : layout.in_features;
  const int64_t out_features = kTransposed ? layout.in_features : layout.out_features;
  const int j = threadIdx.x % B;
  const int m0 = threadIdx.x / B;

  float acc[kPerThread];
#pragma unroll
  for (int p = 0; p < kPerThread; ++p) acc[p] = 0.f;

  const int64_t begin = kTransposed ? layout.col_ptr[out_block] : layout.row_ptr[out_block];
  const int64_t end = kTransposed ? layout.col_ptr[out_block + 1] : layout.row_ptr[out_block + 1];
  for (int64_t pos = begin; pos < end; ++pos) {
    const int64_t blk = kTransposed ? layout.transpose_block[pos] : pos;
    const int64_t in_block = kTransposed ? layout.row_idx[pos] : layout.col_idx[pos];
    const T* w = values + blk * B * B;
    for (int k0 = 0; k0 < B; k0 += C) {
      for (int e = threadIdx.x; e < kTokenTile * C; e += kThreads) {
        const int m = e / C, k = e % C;
        const int64_t token = token0 + m, feature = in_block * B + k0 + k;
        in_tile[m][k] = (token < tokens && feature < in_features) ? to_float(in[token * in_features + feature]) : 0.f;
      }
      for (int e = threadIdx.x; e < B * C; e += kThreads) {
        const int jj = kTransposed ? e % B : e / C, k = kTransposed ? e / B : e % C;
        // W(i = k0 + k, j = jj): forward stores it at blk[jj][i], grad_input at blk[i][jj].
        w_tile[jj][k] = to_float(kTransposed ? w[(k0 + k) * B + jj] : w[jj * B + k0 + k]);
      }
      __syncthreads();
#pragma unroll 8
      for (int k = 0; k < C; ++k) {
        const float wv = w_tile[j][k];
#pragma unroll
        for (int p = 0; p < kPerThread; ++p) acc[p] += in_tile[m0 + p * kRowStride][k] * wv;
      }
      __syncthreads();
    }
  }
  const int64_t feature = out_block * B + j;
  if (feature >= out_features) return;
#pragma unroll
  for (int p = 0; p < kPerThread; ++p) {
    const int64_t token = token0 + m0 + p * kRowStride;
    if (token < tokens) out[token * out_features + feature] = from_float<T>(acc[p]);
  }
}

// grad[blk][i][j] = sum_m dy[m, r*B + i] * x[m, c*B + j].
template <typename T, int B>
__global__ void __launch_bounds__(kThreads)
    block_gradient_kernel(DeviceLayout layout, int64_t tokens, const T* __restrict__ dy, const T* __restrict__ x,
                          T* __restrict__ grad) {
  constexpr int kPerThread = B * B / kThreads;
  constexpr int kRowStride = kThreads / B;
  __shared__ float dy_tile[kReduceTile][B + 1];
  __shared__ float x_tile[kReduceTile][B + 1];

  const int64_t blk = blockIdx.x;
  const int64_t r = layout.block_row[blk], c = layout.col_idx[blk];
  const int j = threadIdx.x % B;
  const int i0 = threadIdx.x / B;
  float acc[kPerThread];
#pragma unroll
  for (int p = 0; p < kPerThread; ++p) acc[p] = 0.f;

  for (int64_t token0 = 0; token0 < tokens; token0 += kReduceTile) {
    for (int e = threadIdx.x; e < kReduceTile * B; e += kThreads) {
      const int m = e / B, k = e % B;
      const int64_t token = token0 + m;
      const int64_t fo = r * B + k, fi = c * B + k;
      dy_tile[m][k] =
          (token < tokens && fo < layout.out_features) ? to_float(dy[token * layout.out_features + fo]) : 0.f;
      x_tile[m][k] = (token < tokens && fi < layout.in_features) ? to_float(x[token * layout.in_features + fi]) : 0.f;
    }
    __syncthreads();
#pragma unroll 4
    for (int m = 0; m < kReduceTile; ++m) {
      const float xv = x_tile[m][j];
#pragma unroll
      for (int p = 0; p < kPerThread; ++p) acc[p] += dy_tile[m][i0 + p * kRowStride] * xv;
    }
    __syncthreads();
  }
  T* g = grad + blk * B * B;
#pragma unroll
  for (int p = 0; p < kPerThread; ++p) g[(i0 + p * kRowStride) * B + j] = from_float<T>(acc[p]);
}

template <typename T, int B>
cudaError_t launch(int which, const DeviceLayout& layout, int64_t tokens, const void* a, const void* b, void* out,
                   cudaStream_t stream) {
  const dim3 threads(kThreads);
  if (which == 2) {
    if (layout.nnz > 0) {
      block_gradient_kernel<T, B><<<dim3(static_cast<unsigned>(layout.nnz)), threads, 0, stream>>>(
          layout, tokens, static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out));
    }
    return cudaGetLastError();
  }
  if (tokens == 0) return cudaSuccess;
  const unsigned token_tiles = static_cast<unsigned>((tokens + kTokenTile - 1) / kTokenTile);
  const unsigned out_blocks = static_cast<unsigned>(which == 0 ? layout.block_rows : layout.block_cols);
  const dim3 grid(token_tiles, out_blocks);
  if (which == 0) {
    row_product_kernel<T, B, false><<<grid, threads, 0, stream>>>(layout, tokens, static_cast<const T*>(a),
                                                                  static_cast<const T*>(b), static_cast<T*>(out));
  } else {
    row_product_kernel<T, B, true><<<grid, threads, 0, stream>>>(layout, tokens, static_cast<const T*>(a),
                                                                 static_cast<const T*>(b), static_cast<T*>(out));
  }
  return cudaGetLastError();
}

template <int B>
cudaError_t dispatch_kind(int which, const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* a,
                          const void* b, void* out, cudaStream_t stream) {
  switch (kind) {
    case ScalarKind::Float32: return launch<float, B>(which, layout, tokens, a, b, out, stream);
    case ScalarKind::Float16: return launch<__half, B>(which, layout, tokens, a, b, out, stream);
    case ScalarKind::BFloat16: return launch<__nv_bfloat16, B>(which, layout, tokens, a, b, out, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t dispatch(int which, const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* a,
                     const void* b, void* out, cudaStream_t stream) {
  switch (layout.block) {
    case 16: return dispatch_kind<16>(which, layout, kind, tokens, a, b, out, stream);
    case 32: return dispatch_kind<32>(which, layout, kind, tokens, a, b, out, stream);
    case 64: return dispatch_kind<64>(which, layout, kind, tokens, a, b, out, stream);
    case 128: return dispatch_kind<128>(which, layout, kind, tokens, a, b, out, stream);
  }
  return cudaErrorInvalidValue;
}

// float32 -> the 16-bit storage type: four elements per thread and step (a 16-byte load, an
// 8-byte store) over the first 4 * quads, then one at a time over the rest. With one element per
// step and a grid of four blocks per multiprocessor it took 3-4 us for Mixer-B fc1's 3.2 MB of dy u
// sums, on the layer's critical path (docs/perf.md, version 38).
template <typename T>
__global__ void round_kernel(const float* __restrict__ in, T* __restrict__ out, int64_t n, int64_t quads) {
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const float4* in4 = reinterpret_cast<const float4*>(in);
  uint2* out4 = reinterpret_cast<uint2*>(out);
  for (int64_t i = first; i < quads; i += stride) {
    out4[i] = device::pack4<T>(in4[i]);
  }
  for (int64_t i = 4 * quads + first; i < n; i += stride) out[i] = from_float<T>(in[i]);
}

// True when the tensor-core kernels run this layout and dtype: a Hopper device and an sm_90a
// build, float16/bfloat16, feature counts multiples of 8 (TMA needs row pitches that are
// multiples of 16 bytes), and the layout's tile schedule on the device.
bool tensor_cores_apply(const DeviceLayout& layout, ScalarKind kind) {
  return kind != ScalarKind::Float32 && layout.out_features % 8 == 0 && layout.in_features % 8 == 0 &&
         layout.row_groups != nullptr && layout.col_groups != nullptr && layout.gradient_pieces != nullptr &&
         supports_block(layout.block) && wgmma::available();
}

}  // namespace

cudaError_t round_to_storage(ScalarKind kind, const float* in, void* out, int64_t elements, cudaStream_t stream) {
  if (kind == ScalarKind::Float32) return cudaErrorInvalidValue;
  if (elements <= 0) return cudaSuccess;
  const bool vectors = reinterpret_cast<uintptr_t>(in) % 16 == 0 && reinterpret_cast<uintptr_t>(out) % 8 == 0;
  const int64_t quads = vectors ? elements / 4 : 0;
  const int64_t items = quads + (elements - 4 * quads);  // each thread's first step covers them all where it can
  constexpr int kThreads = 256;
  const unsigned blocks =
      static_cast<unsigned>(std::min<int64_t>((items + kThreads - 1) / kThreads, 8 * device::multiprocessors()));
  if (kind == ScalarKind::BFloat16) {
    round_kernel<<<blocks, kThreads, 0, stream>>>(in, static_cast<__nv_bfloat16*>(out), elements, quads);
  } else {
    round_kernel<<<blocks, kThreads, 0, stream>>>(in, static_cast<__half*>(out), elements, quads);
  }
  return cudaGetLastError();
}

bool supports_block(int64_t block) { return block == 16 || block == 32 || block == 64 || block == 128; }

cudaError_t forward(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* x, const void* values,
                    void* y, const int32_t* order, cudaStream_t stream) {
  if (tensor_cores_apply(layout, kind)) {
    return wgmma::forward(layout, kind, tokens, x, values, Epilogue{}, y, order, stream);
  }
  return dispatch(0, layout, kind, tokens, x, values, y, stream);
}

cudaError_t grad_input(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy,
                       const void* values, void* dx, const int32_t* order, cudaStream_t stream) {
  if (tensor_cores_apply(layout, kind)) {
    return wgmma::grad_input(layout, kind, tokens, dy, values, Epilogue{}, dx, order, stream);
  }
  return dispatch(1, layout, kind, tokens, dy, values, dx, stream);
}

cudaError_t grad_weight(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy, const void* x,
                        void* grad_values, float* workspace, cudaStream_t stream) {
  if (tensor_cores_apply(layout, kind)) {
    // Tensor cores: the token splits summed in a cluster and stored once, or else added into the
    // float32 workspace and rounded in one more pass.
    const int64_t elements = layout.nnz * layout.block * layout.block;
    if (elements == 0) return cudaSuccess;
    if (wgmma::grad_weight_stored_once(layout, tokens)) {
      return wgmma::grad_weight(layout, kind, tokens, dy, x, grad_values, nullptr, nullptr, nullptr, stream);
    }
    if (workspace == nullptr) return cudaErrorInvalidValue;
    if (cudaError_t e = cudaMemsetAsync(workspace, 0, sizeof(float) * elements, stream); e != cudaSuccess) return e;
    if (cudaError_t e = wgmma::grad_weight(layout, kind, tokens, dy, x, nullptr, workspace, nullptr, nullptr, stream);
        e != cudaSuccess) {
      return e;
    }
    return round_to_storage(kind, workspace, grad_values, elements, stream);
  }
  return dispatch(2, layout, kind, tokens, dy, x, grad_values, stream);
}

bool supports_epilogue(const DeviceLayout& layout, ScalarKind kind, int64_t rank) {
  return tensor_cores_apply(layout, kind) && rank >= 0 && rank % 8 == 0;
}

cudaError_t forward_fused(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* x,
                          const void* values, const Epilogue& epilogue, void* y, const int32_t* order,
                          cudaStream_t stream) {
  if (!supports_epilogue(layout, kind, epilogue.rank)) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(epilogue.bias) % 16 != 0) return cudaErrorMisalignedAddress;
  return wgmma::forward(layout, kind, tokens, x, values, epilogue, y, order, stream);
}

cudaError_t grad_input_fused(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy,
                             const void* values, const Epilogue& epilogue, void* dx, const int32_t* order,
                             cudaStream_t stream) {
  if (!supports_epilogue(layout, kind, epilogue.rank) || epilogue.bias != nullptr) return cudaErrorInvalidValue;
  return wgmma::grad_input(layout, kind, tokens, dy, values, epilogue, dx, order, stream);
}

int64_t grad_weight_workspace_elements(const DeviceLayout& layout, ScalarKind kind) {
  return tensor_cores_apply(layout, kind) ? layout.nnz * layout.block * layout.block : 0;
}

bool can_fold_into_grad_weight(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, int64_t rank) {
  return tensor_cores_apply(layout, kind) && rank > 0 && rank % 8 == 0 && rank <= kMaxGradientFoldRank &&
         layout.gradient_columns_cover_inputs && layout.gradient_fold_sets != nullptr &&
         layout.gradient_column_owner != nullptr && tokens > 0 &&
         !wgmma::grad_weight_stored_once(layout, tokens);
}

bool can_take_low_rank_into_grad_weight(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, int64_t rank) {
  return tensor_cores_apply(layout, kind) && rank > 0 && rank % 8 == 0 && rank <= kMaxGradientFoldRank &&
         layout.gradient_piece_features == kNarrowGradientPieceFeatures && layout.gradient_pieces_cover_rows_once &&
         tokens > 0 && !wgmma::grad_weight_stored_once(layout, tokens);
}

cudaError_t accumulate_grad_weight(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy,
                                   const void* x, float* sums, const GradientFold* fold,
                                   const GradientLowRank* low_rank, cudaStream_t stream) {
  if (grad_weight_workspace_elements(layout, kind) == 0 || sums == nullptr) return cudaErrorInvalidValue;
  if (fold != nullptr && (!can_fold_into_grad_weight(layout, kind, tokens, fold->rank) || fold->a == nullptr ||
                          fold->v_sums == nullptr || fold->a_pitch < fold->rank || fold->a_pitch % 8 != 0)) {
    return cudaErrorInvalidValue;
  }
  if (low_rank != nullptr &&
      (fold != nullptr || !can_take_low_rank_into_grad_weight(layout, kind, tokens, low_rank->rank) ||
       low_rank->u == nullptr || low_rank->a == nullptr || low_rank->dy_u_sums == nullptr ||
       low_rank->product == nullptr || low_rank->a_pitch < low_rank->rank || low_rank->a_pitch % 8 != 0 ||
       low_rank->product_pitch < low_rank->rank + (low_rank->ones ? 1 : 0))) {
    return cudaErrorInvalidValue;
  }
  return wgmma::grad_weight(layout, kind, tokens, dy, x, nullptr, sums, fold, low_rank, stream);
}

}  // namespace pixelfly::kernels::cuda
