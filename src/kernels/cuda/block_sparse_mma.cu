// Tensor-core block-sparse kernels (see block_sparse_mma.cuh).
//
// Every thread block computes a 128 x 128 output tile with 8 warps (2 x 4, 64 x 32 each) and
// mma.sync m16n8k16; operands stream through a 3-stage cp.async pipeline in shared memory with
// padded rows (conflict-free ldmatrix).
//   forward     Y[tokens, group features]  = X . W^T, K walks the row group's union columns
//   grad_input  dX[tokens, group features] = dY . W,  K walks the column group's union rows
//   grad_weight dW[piece rows, piece cols] = dY^T . X, K walks tokens (split over grid.y)
// Lines without a block at a union position read zeros; the results go through shared memory
// so that global stores are whole 16-byte pieces of rows.
#include "kernels/cuda/block_sparse_mma.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <type_traits>

namespace pixelfly::kernels::cuda::mma {
namespace {

constexpr int kTile = 128;  // BM = BN
static_assert(kTile == kKernelTileFeatures, "the schedule must be built for this kernel's tile");
constexpr int kThreads = 256;
constexpr int kStages = 3;
constexpr int kGradientStep = 64;  // tokens per pipeline stage in grad_weight

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global -> shared copy; zero-fills the destination when `valid` is false.
__device__ __forceinline__ void copy16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(dst)), "l"(src),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void wait_pending() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p)));
}

template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma_16816<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// Accumulators of one warp: 4 (m16) x 4 (n8) tiles of 4 floats.
struct WarpAccumulators {
  float v[4][4][4];
  __device__ void scale(float s) {
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int k = 0; k < 4; ++k) v[i][j][k] *= s;
  }
  __device__ void zero() {
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int k = 0; k < 4; ++k) v[i][j][k] = 0.f;
  }
};

// One BK-deep step of the warp's 64 x 32 tile. A is [m][k] (kRowMajorA) or [k][m]; B is [n][k]
// (kNK) or [k][n]. Pitches in elements.
template <typename T, int BK, bool kRowMajorA, bool kNK>
__device__ __forceinline__ void warp_step(WarpAccumulators& acc, const T* a, int a_pitch, const T* b, int b_pitch,
                                          int warp_m, int warp_n, int lane) {
#pragma unroll
  for (int ks = 0; ks < BK; ks += 16) {
    uint32_t af[4][4];
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) {
      const int m = warp_m * 64 + mt * 16;
      if constexpr (kRowMajorA) {
        ldmatrix_x4(af[mt], a + (m + (lane % 16)) * a_pitch + ks + (lane / 16) * 8);
      } else {
        ldmatrix_x4_trans(af[mt], a + (ks + (lane % 8) + 8 * (lane / 16)) * a_pitch + m + 8 * ((lane / 8) % 2));
      }
    }
    uint32_t bf[4][2];
#pragma unroll
    for (int np = 0; np < 2; ++np) {
      const int n = warp_n * 32 + np * 16;
      uint32_t r[4];
      if constexpr (kNK) {
        ldmatrix_x4(r, b + (n + (lane % 8) + 8 * (lane / 16)) * b_pitch + ks + 8 * ((lane / 8) % 2));
      } else {
        ldmatrix_x4_trans(r, b + (ks + (lane % 8) + 8 * ((lane / 8) % 2)) * b_pitch + n + 8 * (lane / 16));
      }
      bf[np * 2][0] = r[0];
      bf[np * 2][1] = r[1];
      bf[np * 2 + 1][0] = r[2];
      bf[np * 2 + 1][1] = r[3];
    }
#pragma unroll
    for (int mt = 0; mt < 4; ++mt)
#pragma unroll
      for (int nt = 0; nt < 4; ++nt) mma_16816<T>(acc.v[mt][nt], af[mt], bf[nt][0], bf[nt][1]);
  }
}

// ----- forward (kTransposed = false) and grad_input (kTransposed = true) ----------------------
// The c-th 16-byte chunk of a B stage: its output-side feature n and its K offset kr. Stages are
// [n][k] in the forward kernel and [k][n] in grad_input.
template <bool kTransposed, int BK>
__device__ __forceinline__ void b_chunk(int c, int& n, int& kr) {
  if constexpr (kTransposed) {
    kr = c / (kTile / 8);
    n = (c % (kTile / 8)) * 8;
  } else {
    n = c / (BK / 8);
    kr = (c % (BK / 8)) * 8;
  }
}

template <int B>
__host__ __device__ constexpr int line_step() { return B < 64 ? B : 64; }  // K elements per pipeline stage

template <typename T, int B, bool kTransposed>
constexpr size_t line_group_shared_bytes() {
  constexpr int BK = line_step<B>();
  constexpr size_t pipeline = sizeof(T) * kStages * (kTile * (BK + 8) + (kTransposed ? BK * (kTile + 8) : kTile * (BK + 8)));
  constexpr size_t epilogue = sizeof(T) * kTile * (kTile + 8);
  return pipeline > epilogue ? pipeline : epilogue;
}

template <typename T, int B, bool kTransposed>
__global__ void __launch_bounds__(kThreads) line_group_kernel(DeviceLayout layout, int64_t tokens,
                                                              const T* __restrict__ in, const T* __restrict__ values,
                                                              Epilogue epilogue, T* __restrict__ out) {
  constexpr int BK = line_step<B>();
  constexpr int kPitchA = BK + 8;                            // A: [m][k]
  constexpr int kPitchB = kTransposed ? kTile + 8 : BK + 8;  // B: [k][n] or [n][k]
  constexpr int kStageA = kTile * kPitchA;
  constexpr int kStageB = kTransposed ? BK * kPitchB : kTile * kPitchB;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* smem_a = reinterpret_cast<T*>(smem_raw);
  T* smem_b = smem_a + kStages * kStageA;

  const int64_t* g = (kTransposed ? layout.col_groups : layout.row_groups) + 5 * static_cast<int64_t>(blockIdx.x);
  const int64_t first = g[0], count = g[1], length = g[3];
  const int64_t* union_index = (kTransposed ? layout.col_index : layout.row_index) + g[2];
  const int64_t* line_blocks = (kTransposed ? layout.col_blocks : layout.row_blocks) + g[4];
  const int64_t token0 = static_cast<int64_t>(blockIdx.y) * kTile;
  const int64_t in_features = kTransposed ? layout.out_features : layout.in_features;
  const int64_t out_features = kTransposed ? layout.in_features : layout.out_features;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int warp_m = warp / 4, warp_n = warp % 4;
  constexpr int kChunks = B / BK;
  const int64_t sparse_steps = length * kChunks;
  const int64_t rank = epilogue.rank;
  const int64_t steps = sparse_steps + (rank + BK - 1) / BK;
  const T* low_rank_a = static_cast<const T*>(epilogue.low_rank_a);
  const T* low_rank_b = static_cast<const T*>(epilogue.low_rank_b);

  // Steps past the block-sparse ones walk the low-rank term: A = low_rank_a[:, k0 ..],
  // B = low_rank_b rows (forward: [feature][rank]) or columns (grad_input: [rank][feature]).
  auto load_low_rank = [&](int stage, int64_t step) {
    const int64_t k0 = (step - sparse_steps) * BK;
    T* a = smem_a + stage * kStageA;
    for (int c = tid; c < kTile * BK / 8; c += kThreads) {
      const int m = c / (BK / 8), k8 = (c % (BK / 8)) * 8;
      const int64_t token = token0 + m;
      const bool valid = token < tokens && k0 + k8 < rank;
      copy16(a + m * kPitchA + k8, valid ? low_rank_a + token * rank + k0 + k8 : low_rank_a, valid);
    }
    T* b = smem_b + stage * kStageB;
    for (int c = tid; c < kTile * BK / 8; c += kThreads) {
      int n, kr;
      b_chunk<kTransposed, BK>(c, n, kr);
      const int64_t feature = first * B + n;
      const bool valid = n < count * B && feature < out_features && k0 + kr < rank;
      const T* src = kTransposed ? low_rank_b + (k0 + kr) * out_features + feature : low_rank_b + feature * rank + k0 + kr;
      copy16(kTransposed ? b + kr * kPitchB + n : b + n * kPitchB + kr, valid ? src : low_rank_b, valid);
    }
  };

  auto load = [&](int stage, int64_t step) {
    if (step >= sparse_steps) {
      load_low_rank(stage, step);
      return;
    }
    const int64_t k = step / kChunks;
    const int kk = static_cast<int>(step % kChunks) * BK;
    const int64_t in_block = union_index[k];
    T* a = smem_a + stage * kStageA;
    for (int c = tid; c < kTile * BK / 8; c += kThreads) {
      const int m = c / (BK / 8), k8 = (c % (BK / 8)) * 8;
      const int64_t token = token0 + m, feature = in_block * B + kk + k8;
      const bool valid = token < tokens && feature < in_features;
      copy16(a + m * kPitchA + k8, valid ? in + token * in_features + feature : in, valid);
    }
    T* b = smem_b + stage * kStageB;
    for (int c = tid; c < kTile * BK / 8; c += kThreads) {
      int n, kr;
      b_chunk<kTransposed, BK>(c, n, kr);
      const int64_t line = n / B;
      const int64_t block = line < count ? line_blocks[line * length + k] : -1;
      const bool valid = block >= 0;
      const T* src = values;
      if (valid) {
        // forward: row n % B of the block, columns kk + kr ..; grad_input: row kk + kr, columns n % B ..
        src = values + block * B * B + (kTransposed ? (kk + kr) * B + (n % B) : (n % B) * B + kk + kr);
      }
      copy16(kTransposed ? b + kr * kPitchB + n : b + n * kPitchB + kr, src, valid);
    }
  };

  WarpAccumulators acc;
  acc.zero();
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < steps) load(s, s);
    commit();
  }
  const float scale = epilogue.scale != nullptr ? *epilogue.scale : 1.f;
  for (int64_t step = 0; step < steps; ++step) {
    wait_pending<kStages - 2>();
    __syncthreads();
    if (step == sparse_steps) acc.scale(scale);  // the block-sparse part is complete
    const int stage = static_cast<int>(step % kStages);
    warp_step<T, BK, true, !kTransposed>(acc, smem_a + stage * kStageA, kPitchA, smem_b + stage * kStageB, kPitchB,
                                         warp_m, warp_n, lane);
    const int64_t next = step + kStages - 1;
    if (next < steps) load(static_cast<int>(next % kStages), next);
    commit();
  }
  wait_pending<0>();
  if (steps == sparse_steps) acc.scale(scale);
  __syncthreads();

  // Epilogue: add the bias, stage the 128 x 128 tile in shared memory, then write whole 16-byte
  // pieces of rows.
  constexpr int kPitchC = kTile + 8;
  T* tile = reinterpret_cast<T*>(smem_raw);
  const T* bias = static_cast<const T*>(epilogue.bias);
#pragma unroll
  for (int mt = 0; mt < 4; ++mt)
#pragma unroll
    for (int nt = 0; nt < 4; ++nt)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int m = warp_m * 64 + mt * 16 + lane / 4 + 8 * half, n = warp_n * 32 + nt * 8 + 2 * (lane % 4);
        float lo = acc.v[mt][nt][2 * half], hi = acc.v[mt][nt][2 * half + 1];
        const int64_t feature = first * B + n;
        if (bias != nullptr && feature + 1 < out_features) {
          lo += to_float(bias[feature]);
          hi += to_float(bias[feature + 1]);
        }
        *reinterpret_cast<uint32_t*>(tile + m * kPitchC + n) = pack2<T>(lo, hi);
      }
  __syncthreads();
  const int64_t feature0 = first * B;
  const int64_t group_end = (first + count) * B;
  const int64_t feature_end = group_end < out_features ? group_end : out_features;
  for (int c = tid; c < kTile * kTile / 8; c += kThreads) {
    const int m = c / (kTile / 8), n = (c % (kTile / 8)) * 8;
    const int64_t token = token0 + m, feature = feature0 + n;
    if (token < tokens && feature < feature_end) {
      *reinterpret_cast<uint4*>(out + token * out_features + feature) = *reinterpret_cast<const uint4*>(tile + m * kPitchC + n);
    }
  }
}

// ----- grad_weight ----------------------------------------------------------------------------
template <typename T, int B>
__global__ void __launch_bounds__(kThreads) gradient_kernel(DeviceLayout layout, int64_t tokens,
                                                            int64_t tokens_per_split, const T* __restrict__ dy,
                                                            const T* __restrict__ x, float* __restrict__ workspace) {
  constexpr int BK = kGradientStep;
  constexpr int kPitch = kTile + 8;
  constexpr int kStage = BK * kPitch;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* smem_a = reinterpret_cast<T*>(smem_raw);  // dY: [token][out feature]
  T* smem_b = smem_a + kStages * kStage;       // X:  [token][in feature]

  const int64_t* p = layout.gradient_pieces + 5 * static_cast<int64_t>(blockIdx.x);
  const int64_t row_begin = p[0], rows = p[1], cols = p[3];
  const int64_t* columns = layout.gradient_columns + p[2];
  const int64_t* piece_blocks = layout.gradient_blocks + p[4];
  const int64_t token_begin = static_cast<int64_t>(blockIdx.y) * tokens_per_split;
  const int64_t token_end = token_begin + tokens_per_split < tokens ? token_begin + tokens_per_split : tokens;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int warp_m = warp / 4, warp_n = warp % 4;
  const int64_t steps = token_end > token_begin ? (token_end - token_begin + BK - 1) / BK : 0;
  const int64_t m_end = rows * B, n_end = cols * B;

  auto load = [&](int stage, int64_t step) {
    const int64_t token0 = token_begin + step * BK;
    T* a = smem_a + stage * kStage;
    T* b = smem_b + stage * kStage;
    for (int c = tid; c < BK * kTile / 8; c += kThreads) {
      const int kr = c / (kTile / 8), f8 = (c % (kTile / 8)) * 8;
      const int64_t token = token0 + kr;
      const int64_t out_feature = row_begin * B + f8;
      const int64_t in_feature = f8 < n_end ? columns[f8 / B] * B + f8 % B : 0;
      const bool token_ok = token < token_end;
      const bool a_ok = token_ok && f8 < m_end && out_feature < layout.out_features;
      const bool b_ok = token_ok && f8 < n_end && in_feature < layout.in_features;
      copy16(a + kr * kPitch + f8, a_ok ? dy + token * layout.out_features + out_feature : dy, a_ok);
      copy16(b + kr * kPitch + f8, b_ok ? x + token * layout.in_features + in_feature : x, b_ok);
    }
  };

  WarpAccumulators acc;
  acc.zero();
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < steps) load(s, s);
    commit();
  }
  for (int64_t step = 0; step < steps; ++step) {
    wait_pending<kStages - 2>();
    __syncthreads();
    const int stage = static_cast<int>(step % kStages);
    warp_step<T, BK, false, false>(acc, smem_a + stage * kStage, kPitch, smem_b + stage * kStage, kPitch, warp_m,
                                   warp_n, lane);
    const int64_t next = step + kStages - 1;
    if (next < steps) load(static_cast<int>(next % kStages), next);
    commit();
  }
  wait_pending<0>();
  if (steps == 0) return;

#pragma unroll
  for (int mt = 0; mt < 4; ++mt) {
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t m = warp_m * 64 + mt * 16 + lane / 4 + 8 * (e / 2);
        const int64_t n = warp_n * 32 + nt * 8 + 2 * (lane % 4) + (e % 2);
        if (m >= m_end || n >= n_end) continue;
        const int64_t block = piece_blocks[(m / B) * cols + n / B];
        if (block >= 0) atomicAdd(workspace + block * B * B + (m % B) * B + n % B, acc.v[mt][nt][e]);
      }
    }
  }
}

template <typename T>
__global__ void convert_kernel(const float* __restrict__ in, T* __restrict__ out, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if constexpr (std::is_same_v<T, __half>) {
      out[i] = __float2half_rn(in[i]);
    } else {
      out[i] = __float2bfloat16_rn(in[i]);
    }
  }
}

int multiprocessors() {
  static const int count = [] {
    int device = 0, sms = 132;
    if (cudaGetDevice(&device) == cudaSuccess) cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    return sms;
  }();
  return count;
}

template <typename Kernel>
cudaError_t allow_shared_memory(Kernel kernel, size_t bytes) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

template <typename T, int B, bool kTransposed>
cudaError_t launch_lines(const DeviceLayout& layout, int64_t tokens, const void* in, const void* values,
                         const Epilogue& epilogue, void* out, cudaStream_t stream) {
  const int64_t groups = kTransposed ? layout.num_col_groups : layout.num_row_groups;
  if (tokens == 0 || groups == 0) return cudaSuccess;
  const size_t bytes = line_group_shared_bytes<T, B, kTransposed>();
  auto kernel = line_group_kernel<T, B, kTransposed>;
  if (cudaError_t e = allow_shared_memory(kernel, bytes); e != cudaSuccess) return e;
  const dim3 grid(static_cast<unsigned>(groups), static_cast<unsigned>((tokens + kTile - 1) / kTile));
  kernel<<<grid, kThreads, bytes, stream>>>(layout, tokens, static_cast<const T*>(in), static_cast<const T*>(values),
                                            epilogue, static_cast<T*>(out));
  return cudaGetLastError();
}

template <typename T, int B>
cudaError_t launch_gradient(const DeviceLayout& layout, int64_t tokens, const void* dy, const void* x, void* grad,
                            float* workspace, cudaStream_t stream) {
  const int64_t elements = layout.nnz * B * B;
  if (elements == 0) return cudaSuccess;
  if (cudaError_t e = cudaMemsetAsync(workspace, 0, sizeof(float) * elements, stream); e != cudaSuccess) return e;
  if (tokens > 0 && layout.num_gradient_pieces > 0) {
    // Split the token reduction so that about two waves of thread blocks are in flight, each
    // split at least 256 tokens long.
    const int64_t pieces = layout.num_gradient_pieces;
    const int64_t max_splits = std::max<int64_t>(1, tokens / 256);
    const int64_t splits = std::clamp<int64_t>((2 * multiprocessors() + pieces - 1) / pieces, 1, max_splits);
    const int64_t per_split = ((tokens + splits - 1) / splits + kGradientStep - 1) / kGradientStep * kGradientStep;
    const int64_t used_splits = (tokens + per_split - 1) / per_split;
    const size_t bytes = sizeof(T) * kStages * 2 * kGradientStep * (kTile + 8);
    auto kernel = gradient_kernel<T, B>;
    if (cudaError_t e = allow_shared_memory(kernel, bytes); e != cudaSuccess) return e;
    const dim3 grid(static_cast<unsigned>(pieces), static_cast<unsigned>(used_splits));
    kernel<<<grid, kThreads, bytes, stream>>>(layout, tokens, per_split, static_cast<const T*>(dy),
                                              static_cast<const T*>(x), workspace);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  }
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((elements + 255) / 256, 4 * multiprocessors()));
  convert_kernel<T><<<blocks, 256, 0, stream>>>(workspace, static_cast<T*>(grad), elements);
  return cudaGetLastError();
}

template <typename T>
cudaError_t dispatch(int which, const DeviceLayout& layout, int64_t tokens, const void* a, const void* b,
                     const Epilogue& epilogue, void* out, float* workspace, cudaStream_t stream) {
#define PIXELFLY_BLOCK_CASE(BS)                                                                      \
  case BS:                                                                                           \
    if (which == 0) return launch_lines<T, BS, false>(layout, tokens, a, b, epilogue, out, stream);  \
    if (which == 1) return launch_lines<T, BS, true>(layout, tokens, a, b, epilogue, out, stream);   \
    return launch_gradient<T, BS>(layout, tokens, a, b, out, workspace, stream);
  switch (layout.block) {
    PIXELFLY_BLOCK_CASE(16)
    PIXELFLY_BLOCK_CASE(32)
    PIXELFLY_BLOCK_CASE(64)
    PIXELFLY_BLOCK_CASE(128)
  }
#undef PIXELFLY_BLOCK_CASE
  return cudaErrorInvalidValue;
}

cudaError_t dispatch_kind(int which, const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* a,
                          const void* b, const Epilogue& epilogue, void* out, float* workspace, cudaStream_t stream) {
  if (kind == ScalarKind::BFloat16) {
    return dispatch<__nv_bfloat16>(which, layout, tokens, a, b, epilogue, out, workspace, stream);
  }
  return dispatch<__half>(which, layout, tokens, a, b, epilogue, out, workspace, stream);
}

}  // namespace

bool applies(const DeviceLayout& layout, ScalarKind kind) {
  return kind != ScalarKind::Float32 && layout.out_features % 8 == 0 && layout.in_features % 8 == 0 &&
         layout.row_groups != nullptr && layout.col_groups != nullptr && layout.gradient_pieces != nullptr &&
         supports_block(layout.block);
}

cudaError_t forward(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* x, const void* values,
                    const Epilogue& epilogue, void* y, cudaStream_t stream) {
  return dispatch_kind(0, layout, kind, tokens, x, values, epilogue, y, nullptr, stream);
}

cudaError_t grad_input(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy,
                       const void* values, const Epilogue& epilogue, void* dx, cudaStream_t stream) {
  return dispatch_kind(1, layout, kind, tokens, dy, values, epilogue, dx, nullptr, stream);
}

cudaError_t grad_weight(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy, const void* x,
                        void* grad_values, float* workspace, cudaStream_t stream) {
  return dispatch_kind(2, layout, kind, tokens, dy, x, Epilogue{}, grad_values, workspace, stream);
}

}  // namespace pixelfly::kernels::cuda::mma
