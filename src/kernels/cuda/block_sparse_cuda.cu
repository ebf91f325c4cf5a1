// CUDA kernels for block-sparse linear products (see block_sparse_cuda.h): the entry points
// route float16/bfloat16 to the Hopper tensor-core kernels (block_sparse_wgmma.cu) where they
// apply; this file holds the CUDA-core kernels for everything else (float32, other GPUs, feature
// counts the tensor-core kernels cannot map), register-tiled as a float32 matrix product is.
// forward / grad_input: one thread block per (block row of the output, token tile), the block
// rows of one token tile launched together so that they find its activations in L2; it walks
// that row's nonzero blocks (forward: the CSR row; grad_input: the layout's transpose index) in
// K slices of 16, double-buffered in shared memory (the next slice loaded into registers, four
// elements a load, while the current one is multiplied), each thread accumulating an 8 (or 4)
// tokens x 8 (or 4) features tile of the output.
// grad_weight: one thread block per nonzero block, its threads in groups that each hold the
// whole b x b block in 4 x 4 (8 x 8 at block 128) register tiles over their share of every
// token slice, the groups' sums added in shared memory at the end in a fixed order (no atomics:
// the result does not depend on scheduling).
#include "kernels/cuda/block_sparse_cuda.h"

#include "kernels/cuda/block_sparse_wgmma.cuh"
#include "kernels/cuda/device_primitives.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

namespace pixelfly::kernels::cuda {
namespace {

constexpr int kThreads = 256;

using device::from_float;
using device::load4;
using device::to_float;

// Four consecutive elements p[0..3] of a row as floats, those at or past `valid` 0: one vector
// load where the row's elements come in aligned fours (`vector`), else one at a time.
template <typename T>
__device__ __forceinline__ float4 load_four(const T* p, int64_t valid, bool vector) {
  if (vector) return valid >= 4 ? load4(p) : make_float4(0.f, 0.f, 0.f, 0.f);
  return make_float4(valid > 0 ? to_float(p[0]) : 0.f, valid > 1 ? to_float(p[1]) : 0.f,
                     valid > 2 ? to_float(p[2]) : 0.f, valid > 3 ? to_float(p[3]) : 0.f);
}

// True when rows of `width` elements starting at `base` come in aligned fours.
template <typename T>
bool rows_in_fours(const T* base, int64_t width) {
  return width % 4 == 0 && reinterpret_cast<uintptr_t>(base) % (4 * sizeof(T)) == 0;
}

// The forward / grad_input tiling at block size B: each thread holds kRows tokens x kCols
// features of the output; kColThreads threads span the block row's B features, kRowThreads the
// tile's kTokens tokens; kDepth is the K slice staged per step (it divides every block size).
template <int B>
struct RowTile {
  static constexpr int kCols = B >= 64 ? 8 : 4;
  static constexpr int kRows = B >= 32 ? 8 : 4;
  static constexpr int kColThreads = B / kCols;
  static constexpr int kRowThreads = kThreads / kColThreads;
  static constexpr int kTokens = kRows * kRowThreads;
  static constexpr int kDepth = 16;
  static constexpr int kTokenPitch = kTokens + 4;  // floats; keeps rows 16-byte aligned
  static constexpr int kFeaturePitch = B + 4;
  static constexpr int kActivationFours = kTokens * kDepth / (4 * kThreads);
  static constexpr int kWeightLoads = (B * kDepth + kThreads - 1) / kThreads;
  static constexpr int kMinBlocks = B <= 32 ? 2 : 1;  // thread blocks per multiprocessor
  static_assert(kTokens * kDepth % (4 * kThreads) == 0, "activation slice must split evenly over the threads");
};

// out[m, o*B + j] = sum over the output block row's nonzero blocks of
//   in[m, c*B + i] * W(i, j), with W(i, j) = blk[j][i] (forward) or blk[i][j] (grad_input).
template <typename T, int B, bool kTransposed>
__global__ void __launch_bounds__(kThreads, RowTile<B>::kMinBlocks)
    row_product_kernel(DeviceLayout layout, int64_t tokens, const T* __restrict__ in, bool in_fours,
                       const T* __restrict__ values, T* __restrict__ out) {
  using Tile = RowTile<B>;
  constexpr int D = Tile::kDepth;
  constexpr int kSlicesPerBlock = B / D;
  // Two buffers of the activation slice (D x tokens, K-major rows of tokens) and the weight
  // slice (D x B).
  __shared__ __align__(16) float act[2][D][Tile::kTokenPitch];
  __shared__ __align__(16) float wgt[2][D][Tile::kFeaturePitch];

  const int64_t out_block = blockIdx.x;
  const int64_t in_features = kTransposed ? layout.out_features : layout.in_features;
  const int64_t out_features = kTransposed ? layout.in_features : layout.out_features;
  const int tx = threadIdx.x % Tile::kColThreads;
  const int ty = threadIdx.x / Tile::kColThreads;
  const int64_t begin = kTransposed ? layout.col_ptr[out_block] : layout.row_ptr[out_block];
  const int64_t slices = ((kTransposed ? layout.col_ptr[out_block + 1] : layout.row_ptr[out_block + 1]) - begin) *
                         kSlicesPerBlock;
  const int64_t token_tiles = (tokens + Tile::kTokens - 1) / Tile::kTokens;

  for (int64_t tile = blockIdx.y; tile < token_tiles; tile += gridDim.y) {
    const int64_t token0 = tile * Tile::kTokens;
    float4 act_next[Tile::kActivationFours];
    float wgt_next[Tile::kWeightLoads];
    // Where a slice's elements go. Four-element group g of the activation slice: token m of the
    // tile, K offset k. Element e of the weight slice: W(i = k0 + k, j), which the forward stores at
    // blk[j][i] and grad_input at blk[i][j]; consecutive e read consecutive addresses either way.
    auto activation_slot = [](int g) { return make_int2(g / (D / 4), (g % (D / 4)) * 4); };  // (m, k)
    auto weight_slot = [](int e) { return kTransposed ? make_int2(e % B, e / B) : make_int2(e / D, e % D); };  // (j, k)
    // Slice s of the K walk from global memory into registers: block begin + s / kSlicesPerBlock,
    // its rows (s % kSlicesPerBlock) * D onwards; activations past the tokens or features are 0.
    auto load = [&](int64_t s) {
      const int64_t pos = begin + s / kSlicesPerBlock;
      const int k0 = static_cast<int>(s % kSlicesPerBlock) * D;
      const int64_t blk = kTransposed ? layout.transpose_block[pos] : pos;
      const int64_t in_block = kTransposed ? layout.row_idx[pos] : layout.col_idx[pos];
#pragma unroll
      for (int q = 0; q < Tile::kActivationFours; ++q) {
        const int2 mk = activation_slot(threadIdx.x + q * kThreads);
        const int64_t token = token0 + mk.x, feature = in_block * B + k0 + mk.y;
        act_next[q] = token < tokens ? load_four(in + token * in_features + feature, in_features - feature, in_fours)
                                     : make_float4(0.f, 0.f, 0.f, 0.f);
      }
      const T* w = values + blk * B * B;
#pragma unroll
      for (int q = 0; q < Tile::kWeightLoads; ++q) {
        const int e = threadIdx.x + q * kThreads;
        if (e < B * D) {
          const int2 jk = weight_slot(e);
          wgt_next[q] = to_float(kTransposed ? w[(k0 + jk.y) * B + jk.x] : w[jk.x * B + k0 + jk.y]);
        }
      }
    };
    auto store = [&](int buf) {
#pragma unroll
      for (int q = 0; q < Tile::kActivationFours; ++q) {
        const int2 mk = activation_slot(threadIdx.x + q * kThreads);
        act[buf][mk.y][mk.x] = act_next[q].x;
        act[buf][mk.y + 1][mk.x] = act_next[q].y;
        act[buf][mk.y + 2][mk.x] = act_next[q].z;
        act[buf][mk.y + 3][mk.x] = act_next[q].w;
      }
#pragma unroll
      for (int q = 0; q < Tile::kWeightLoads; ++q) {
        const int e = threadIdx.x + q * kThreads;
        if (e < B * D) {
          const int2 jk = weight_slot(e);
          wgt[buf][jk.y][jk.x] = wgt_next[q];
        }
      }
    };

    float acc[Tile::kRows][Tile::kCols];
#pragma unroll
    for (int r = 0; r < Tile::kRows; ++r) {
#pragma unroll
      for (int c = 0; c < Tile::kCols; ++c) acc[r][c] = 0.f;
    }
    if (slices > 0) {
      load(0);
      store(0);
      __syncthreads();
    }
    for (int64_t s = 0; s < slices; ++s) {
      const int buf = static_cast<int>(s & 1);
      if (s + 1 < slices) load(s + 1);  // global loads in flight while this slice is multiplied
#pragma unroll
      for (int k = 0; k < D; ++k) {
        float a[Tile::kRows], w[Tile::kCols];
#pragma unroll
        for (int r = 0; r < Tile::kRows; r += 4) {
          const float4 v = *reinterpret_cast<const float4*>(&act[buf][k][ty * Tile::kRows + r]);
          a[r] = v.x, a[r + 1] = v.y, a[r + 2] = v.z, a[r + 3] = v.w;
        }
#pragma unroll
        for (int c = 0; c < Tile::kCols; c += 4) {
          const float4 v = *reinterpret_cast<const float4*>(&wgt[buf][k][tx * Tile::kCols + c]);
          w[c] = v.x, w[c + 1] = v.y, w[c + 2] = v.z, w[c + 3] = v.w;
        }
#pragma unroll
        for (int r = 0; r < Tile::kRows; ++r) {
#pragma unroll
          for (int c = 0; c < Tile::kCols; ++c) acc[r][c] = fmaf(a[r], w[c], acc[r][c]);
        }
      }
      // The other buffer was last read in step s - 1, which every thread finished before the
      // barrier that ended it; the last step's barrier also ends this tile's reads of both.
      if (s + 1 < slices) store(buf ^ 1);
      __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < Tile::kRows; ++r) {
      const int64_t token = token0 + ty * Tile::kRows + r;
      if (token >= tokens) break;
#pragma unroll
      for (int c = 0; c < Tile::kCols; ++c) {
        const int64_t feature = out_block * B + tx * Tile::kCols + c;
        if (feature < out_features) out[token * out_features + feature] = from_float<T>(acc[r][c]);
      }
    }
  }
}

// The grad_weight tiling at block size B: each thread holds a kSide x kSide tile of the b x b
// block; kGroupThreads threads cover the block once, kGroups such groups split each slice of
// kTokens tokens between them.
template <int B>
struct BlockTile {
  static constexpr int kSide = B == 128 ? 8 : 4;
  static constexpr int kSideThreads = B / kSide;
  static constexpr int kGroupThreads = kSideThreads * kSideThreads;
  static constexpr int kGroups = kThreads / kGroupThreads;
  static constexpr int kTokens = 2048 / B;
  static constexpr int kGroupTokens = kTokens / kGroups;
  static constexpr int kPitch = B + 4;  // floats; keeps rows 16-byte aligned
  static constexpr int kFours = kTokens * B / (4 * kThreads);
  static constexpr int kStageFloats = 2 * kTokens * kPitch;  // dy's slice, then x's
  static_assert(kGroups * kGroupThreads == kThreads && kTokens % kGroups == 0, "uneven block tiling");
  static_assert(kGroups == 1 || 2 * kStageFloats >= kGroups * B * B, "the groups' sums must fit the stages");
};

// grad[blk][i][j] = sum_m dy[m, r*B + i] * x[m, c*B + j].
template <typename T, int B>
__global__ void __launch_bounds__(kThreads)
    block_gradient_kernel(DeviceLayout layout, int64_t tokens, const T* __restrict__ dy, bool dy_fours,
                          const T* __restrict__ x, bool x_fours, T* __restrict__ grad) {
  using Tile = BlockTile<B>;
  constexpr int S = Tile::kSide;
  // Two stages of (dy slice, x slice), each kTokens x B, token-major; reused at the end for the
  // groups' sums.
  __shared__ __align__(16) float stages[2 * Tile::kStageFloats];

  const int64_t blk = blockIdx.x;
  const int64_t r = layout.block_row[blk], c = layout.col_idx[blk];
  const int group = threadIdx.x / Tile::kGroupThreads;
  const int lane = threadIdx.x % Tile::kGroupThreads;
  const int ti = lane / Tile::kSideThreads, tj = lane % Tile::kSideThreads;
  const int64_t slices = (tokens + Tile::kTokens - 1) / Tile::kTokens;

  float4 dy_next[Tile::kFours], x_next[Tile::kFours];
  auto load = [&](int64_t s) {
#pragma unroll
    for (int q = 0; q < Tile::kFours; ++q) {
      const int g = threadIdx.x + q * kThreads;
      const int64_t token = s * Tile::kTokens + g / (B / 4);
      const int k = (g % (B / 4)) * 4;
      const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
      const int64_t fo = r * B + k, fi = c * B + k;
      dy_next[q] = token < tokens ? load_four(dy + token * layout.out_features + fo, layout.out_features - fo, dy_fours)
                                  : zero;
      x_next[q] = token < tokens ? load_four(x + token * layout.in_features + fi, layout.in_features - fi, x_fours)
                                 : zero;
    }
  };
  auto store = [&](int buf) {
    float* dy_s = stages + buf * Tile::kStageFloats;
    float* x_s = dy_s + Tile::kTokens * Tile::kPitch;
#pragma unroll
    for (int q = 0; q < Tile::kFours; ++q) {
      const int g = threadIdx.x + q * kThreads;
      const int at = (g / (B / 4)) * Tile::kPitch + (g % (B / 4)) * 4;
      *reinterpret_cast<float4*>(&dy_s[at]) = dy_next[q];
      *reinterpret_cast<float4*>(&x_s[at]) = x_next[q];
    }
  };

  float acc[S][S];
#pragma unroll
  for (int i = 0; i < S; ++i) {
#pragma unroll
    for (int j = 0; j < S; ++j) acc[i][j] = 0.f;
  }
  if (slices > 0) {
    load(0);
    store(0);
    __syncthreads();
  }
  for (int64_t s = 0; s < slices; ++s) {
    const int buf = static_cast<int>(s & 1);
    if (s + 1 < slices) load(s + 1);
    const float* dy_s = stages + buf * Tile::kStageFloats;
    const float* x_s = dy_s + Tile::kTokens * Tile::kPitch;
#pragma unroll 4
    for (int m = group * Tile::kGroupTokens; m < (group + 1) * Tile::kGroupTokens; ++m) {
      float a[S], b[S];
#pragma unroll
      for (int q = 0; q < S; q += 4) {
        const float4 va = *reinterpret_cast<const float4*>(&dy_s[m * Tile::kPitch + ti * S + q]);
        const float4 vb = *reinterpret_cast<const float4*>(&x_s[m * Tile::kPitch + tj * S + q]);
        a[q] = va.x, a[q + 1] = va.y, a[q + 2] = va.z, a[q + 3] = va.w;
        b[q] = vb.x, b[q + 1] = vb.y, b[q + 2] = vb.z, b[q + 3] = vb.w;
      }
#pragma unroll
      for (int i = 0; i < S; ++i) {
#pragma unroll
        for (int j = 0; j < S; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
      }
    }
    if (s + 1 < slices) store(buf ^ 1);
    __syncthreads();
  }
  T* g = grad + blk * B * B;
  if constexpr (Tile::kGroups == 1) {
#pragma unroll
    for (int i = 0; i < S; ++i) {
#pragma unroll
      for (int j = 0; j < S; ++j) g[(ti * S + i) * B + tj * S + j] = from_float<T>(acc[i][j]);
    }
  } else {
    // Each group's sums into the stages (the loop's last barrier ended every read of them),
    // then every element's kGroups sums added in group order.
    float* sums = stages;
#pragma unroll
    for (int i = 0; i < S; ++i) {
#pragma unroll
      for (int j = 0; j < S; ++j) sums[group * B * B + (ti * S + i) * B + tj * S + j] = acc[i][j];
    }
    __syncthreads();
    for (int e = threadIdx.x; e < B * B; e += kThreads) {
      float total = 0.f;
#pragma unroll
      for (int q = 0; q < Tile::kGroups; ++q) total += sums[q * B * B + e];
      g[e] = from_float<T>(total);
    }
  }
}

template <typename T, int B>
cudaError_t launch(int which, const DeviceLayout& layout, int64_t tokens, const void* a, const void* b, void* out,
                   cudaStream_t stream) {
  const dim3 threads(kThreads);
  if (which == 2) {
    if (layout.nnz > 0) {
      const T* dy = static_cast<const T*>(a);
      const T* x = static_cast<const T*>(b);
      block_gradient_kernel<T, B><<<dim3(static_cast<unsigned>(layout.nnz)), threads, 0, stream>>>(
          layout, tokens, dy, rows_in_fours(dy, layout.out_features), x, rows_in_fours(x, layout.in_features),
          static_cast<T*>(out));
    }
    return cudaGetLastError();
  }
  if (tokens == 0) return cudaSuccess;
  // Block rows along x, so that the block rows of a token tile run together; token tiles along y,
  // at most 65535 of them, each block walking every gridDim.y-th tile.
  const int64_t token_tiles = (tokens + RowTile<B>::kTokens - 1) / RowTile<B>::kTokens;
  const unsigned out_blocks = static_cast<unsigned>(which == 0 ? layout.block_rows : layout.block_cols);
  const dim3 grid(out_blocks, static_cast<unsigned>(std::min<int64_t>(token_tiles, 65535)));
  const T* in = static_cast<const T*>(a);
  const bool in_fours = rows_in_fours(in, which == 0 ? layout.in_features : layout.out_features);
  if (which == 0) {
    row_product_kernel<T, B, false><<<grid, threads, 0, stream>>>(layout, tokens, in, in_fours,
                                                                  static_cast<const T*>(b), static_cast<T*>(out));
  } else {
    row_product_kernel<T, B, true><<<grid, threads, 0, stream>>>(layout, tokens, in, in_fours,
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
