// Hopper (sm_90a) block-sparse kernels on warpgroup MMA (see block_sparse_wgmma.cuh).
//
// A thread block has two warpgroups and computes a 128-token x 128-feature tile (wgmma.m64n128k16,
// both operands in shared memory, float32 accumulators in registers). Operands stream through a
// 3-stage cp.async pipeline, 64 K elements per stage, stored in the 128-byte swizzled layout that
// wgmma reads directly; each stage's products are issued before the copies for a later stage, so
// the two overlap. Two blocks fit on a multiprocessor, so one block's epilogue overlaps the
// other's main loop. (Measured and dropped, docs/perf.md: 256-token tiles with one block per
// multiprocessor, and a persistent grid whose pipeline runs across tiles; both were slower.)
//   forward     Y[tokens, group features]  = X . W^T   A = X (K-major), B = W blocks (K-major)
//   grad_input  dX[tokens, group features] = dY . W    A = dY (K-major), B = W blocks (N-major)
//   grad_weight dW[piece rows, piece cols] = dY^T . X  A = dY (M-major), B = X (N-major)
// K walks the group's union index list (a stage may span several blocks when B < 64), then the
// low-rank term as extra K steps; lines without a block at a union position read zeros.
#include "kernels/cuda/block_sparse_wgmma.cuh"

#include "kernels/cuda/device_primitives.cuh"

namespace pixelfly::kernels::cuda::wgmma {
namespace {

using device::commit;
using device::copy16;
using device::smem_address;
using device::wait_pending;

constexpr int kTile = 128;
static_assert(kTile == kKernelTileFeatures, "the schedule must be built for this kernel's tile");
constexpr int kThreads = 256;                   // two warpgroups
constexpr int kStep = 64;                       // K elements per stage: one 128-byte swizzle row
constexpr int kOperandBytes = kTile * kStep * 2;  // a 128-row operand's stage: 16 KB
constexpr int kSwizzleAtom = 1024;              // 8 rows of 128 bytes
constexpr int kStages = 3;
constexpr int kBlocksPerSM = 2;
constexpr size_t kSharedBytes = 2 * kStages * kOperandBytes + kSwizzleAtom;  // + alignment slack
constexpr int kEpiloguePitch = kTile + 8;  // elements per row of the output tile staged in shared memory
static_assert(2 * kTile * kEpiloguePitch <= 2 * kStages * kOperandBytes, "the staged tile fits");

// Byte offset of 16-byte chunk `chunk` (0..7) of `row` in a tile of 128-byte rows, 128-byte
// swizzle: the chunk index is XORed with the row's position in its 8-row atom.
__device__ __forceinline__ uint32_t swizzled(int row, int chunk) {
  return static_cast<uint32_t>(row * 128 + ((chunk ^ (row & 7)) << 4));
}
// MN-major 128 (mn) x 64 (k) tile: two 64-wide halves of 64 k-rows each, 8 KB apart.
constexpr uint32_t kHalfBytes = 64 * 128;
__device__ __forceinline__ uint32_t swizzled_mn(int k, int mn) {
  return static_cast<uint32_t>((mn >> 6) * kHalfBytes) + swizzled(k, (mn & 63) >> 3);
}

// wgmma shared-memory matrix descriptor, 128-byte swizzle. K-major: the leading offset is
// unused, the stride offset steps 8 rows. MN-major: the leading offset steps 64-element halves
// along M/N, the stride offset steps 8 rows along K.
__device__ __forceinline__ uint64_t descriptor(uint32_t address, uint32_t leading, uint32_t stride) {
  return static_cast<uint64_t>((address & 0x3FFFF) >> 4) | (static_cast<uint64_t>(leading >> 4) << 16) |
         (static_cast<uint64_t>(stride >> 4) << 32) | (1ull << 62);
}

__device__ __forceinline__ void fence_async_shared() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }

#define PIXELFLY_D4(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3])
#define PIXELFLY_D16(i) PIXELFLY_D4(i), PIXELFLY_D4(i + 4), PIXELFLY_D4(i + 8), PIXELFLY_D4(i + 12)
#define PIXELFLY_WGMMA_128(TYPE)                                                                       \
  "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                                           \
  "wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE " "                                     \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                            \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                   \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                   \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "                  \
  "%64, %65, p, 1, 1, %67, %68;\n}\n"

// d (64 x 128 per warpgroup) += A (64 x 16) . B (16 x 128); kTransA / kTransB: the operand is
// M-/N-major in shared memory instead of K-major.
template <typename T, int kTransA, int kTransB>
__device__ __forceinline__ void mma_64x128x16(float (&d)[64], uint64_t a, uint64_t b) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(PIXELFLY_WGMMA_128("bf16")
                 : PIXELFLY_D16(0), PIXELFLY_D16(16), PIXELFLY_D16(32), PIXELFLY_D16(48)
                 : "l"(a), "l"(b), "r"(1), "n"(kTransA), "n"(kTransB));
  } else {
    asm volatile(PIXELFLY_WGMMA_128("f16")
                 : PIXELFLY_D16(0), PIXELFLY_D16(16), PIXELFLY_D16(32), PIXELFLY_D16(48)
                 : "l"(a), "l"(b), "r"(1), "n"(kTransA), "n"(kTransB));
  }
}
#undef PIXELFLY_WGMMA_128
#undef PIXELFLY_D16
#undef PIXELFLY_D4

// Issues one 64-deep stage (four k16 steps) of a warpgroup's 64 x 128 product; the caller waits
// with wgmma_wait_all(). A K-major operand advances 32 bytes per k16 step inside its swizzle row;
// an M/N-major operand advances two 8-row groups (2 KB).
template <typename T, bool kTransA, bool kTransB>
__device__ __forceinline__ void issue_stage(float (&d)[64], uint32_t a, uint32_t b) {
  wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < kStep / 16; ++ks) {
    const uint64_t da = kTransA ? descriptor(a + ks * 2 * kSwizzleAtom, kHalfBytes, kSwizzleAtom)
                                : descriptor(a + ks * 32, 16, kSwizzleAtom);
    const uint64_t db = kTransB ? descriptor(b + ks * 2 * kSwizzleAtom, kHalfBytes, kSwizzleAtom)
                                : descriptor(b + ks * 32, 16, kSwizzleAtom);
    mma_64x128x16<T, kTransA ? 1 : 0, kTransB ? 1 : 0>(d, da, db);
  }
  wgmma_commit();
}

// The main loop of every kernel here: zeroes the accumulators, then runs `steps` 64-deep K stages
// through the kStages-deep cp.async pipeline. load(step) issues the copies of one stage into
// slot step % kStages; before_stage(step) may touch the accumulators before that stage's
// products (no product is in flight then). a and b are the shared-memory operand buffers, a
// already offset to this warpgroup's rows.
template <typename T, bool kTransA, bool kTransB, typename Load, typename BeforeStage>
__device__ __forceinline__ void run_pipeline(float (&d)[64], int64_t steps, uint32_t a, uint32_t b, Load&& load,
                                             BeforeStage&& before_stage) {
#pragma unroll
  for (int i = 0; i < 64; ++i) d[i] = 0.f;
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < steps) load(s);
    commit();
  }
  for (int64_t step = 0; step < steps; ++step) {
    wait_pending<kStages - 2>();
    fence_async_shared();
    __syncthreads();  // the stage has landed, and every warpgroup is done with the one reloaded below
    before_stage(step);
    const uint32_t stage = static_cast<uint32_t>(step % kStages) * kOperandBytes;
    issue_stage<T, kTransA, kTransB>(d, a + stage, b + stage);
    if (step + kStages - 1 < steps) load(step + kStages - 1);
    commit();
    wgmma_wait_all();
  }
  wait_pending<0>();
}

__device__ __forceinline__ unsigned char* aligned_shared(unsigned char* raw) {
  const uint32_t a = smem_address(raw);
  return raw + ((kSwizzleAtom - (a & (kSwizzleAtom - 1))) & (kSwizzleAtom - 1));
}

// Row (within the 128 x 128 tile) and column of this thread's accumulators d[4 j + 2 h + e]
// (e: the column's neighbour).
__device__ __forceinline__ int accumulator_row(int warp, int lane, int h) {
  return (warp / 4) * 64 + (warp % 4) * 16 + lane / 4 + 8 * h;
}
__device__ __forceinline__ int accumulator_col(int lane, int j) { return 8 * j + 2 * (lane % 4); }

// ----- forward (kTransposed = false) and grad_input (kTransposed = true) ----------------------
template <typename T, int B, bool kTransposed>
__global__ void __launch_bounds__(kThreads, kBlocksPerSM)
    line_group_kernel(DeviceLayout layout, int64_t tokens, const T* __restrict__ in, const T* __restrict__ values,
                      Epilogue epilogue, T* __restrict__ out) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = aligned_shared(smem_raw);
  const uint32_t smem_a = smem_address(smem);
  const uint32_t smem_b = smem_a + kStages * kOperandBytes;

  const int64_t* g = (kTransposed ? layout.col_groups : layout.row_groups) + 5 * static_cast<int64_t>(blockIdx.x);
  const int64_t first = g[0], count = g[1], length = g[3];
  const int64_t* union_index = (kTransposed ? layout.col_index : layout.row_index) + g[2];
  const int64_t* line_blocks = (kTransposed ? layout.col_blocks : layout.row_blocks) + g[4];
  const int64_t token0 = static_cast<int64_t>(blockIdx.y) * kTile;
  const int64_t in_features = kTransposed ? layout.out_features : layout.in_features;
  const int64_t out_features = kTransposed ? layout.in_features : layout.out_features;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int64_t sparse_steps = (length * B + kStep - 1) / kStep;
  const int64_t rank = epilogue.rank;
  const int64_t steps = sparse_steps + (rank + kStep - 1) / kStep;
  const int64_t line_end = count * B;  // features of this group inside the tile
  const T* low_rank_a = static_cast<const T*>(epilogue.low_rank_a);
  const T* low_rank_b = static_cast<const T*>(epilogue.low_rank_b);

  // A: 128 tokens x 64 K, K-major. Each thread copies chunk (tid % 8) of rows tid / 8 + 32 i.
  const int a_chunk = tid % 8;
  auto load_a = [&](uint32_t stage, int64_t step) {
    const int64_t kk = step * kStep + a_chunk * 8;
    const T* base = in;
    int64_t feature = 0, pitch = in_features;
    bool k_valid;
    if (step < sparse_steps) {
      const int64_t p = kk / B;
      k_valid = p < length;
      if (k_valid) feature = union_index[p] * B + kk % B;
      k_valid = k_valid && feature < in_features;
    } else {
      base = low_rank_a;
      pitch = rank;
      feature = kk - sparse_steps * kStep;
      k_valid = feature < rank;
    }
#pragma unroll
    for (int i = 0; i < kTile / 32; ++i) {
      const int m = tid / 8 + 32 * i;
      const int64_t token = token0 + m;
      const bool valid = k_valid && token < tokens;
      copy16(stage + swizzled(m, a_chunk), valid ? base + token * pitch + feature : base, valid);
    }
  };
  // B, forward: 128 features x 64 K, K-major ([n][k]); grad_input: 64 K x 128 features,
  // N-major ([k][n]).
  auto load_b = [&](uint32_t stage, int64_t step) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      int n, k;
      if constexpr (kTransposed) {
        k = tid / 16 + 16 * i;
        n = (tid % 16) * 8;
      } else {
        n = tid / 8 + 32 * i;
        k = (tid % 8) * 8;
      }
      const int64_t kk = step * kStep + k;
      const T* src = values;
      bool valid;
      if (step < sparse_steps) {
        const int64_t p = kk / B, line = n / B;
        const int64_t block = p < length && line < count ? line_blocks[line * length + p] : -1;
        valid = block >= 0;
        if (valid) src = values + block * B * B + (kTransposed ? (kk % B) * B + n % B : (n % B) * B + kk % B);
      } else {
        const int64_t r = kk - sparse_steps * kStep, feature = first * B + n;
        valid = n < line_end && feature < out_features && r < rank;
        if (valid) src = kTransposed ? low_rank_b + r * out_features + feature : low_rank_b + feature * rank + r;
      }
      copy16(stage + (kTransposed ? swizzled_mn(k, n) : swizzled(n, k / 8)), src, valid);
    }
  };
  auto load = [&](int64_t step) {
    const uint32_t stage = static_cast<uint32_t>(step % kStages) * kOperandBytes;
    load_a(smem_a + stage, step);
    load_b(smem_b + stage, step);
  };

  float d[64];
  const float scale = epilogue.scale != nullptr ? *epilogue.scale : 1.f;
  auto scale_accumulators = [&] {
#pragma unroll
    for (int i = 0; i < 64; ++i) d[i] *= scale;
  };
  const uint32_t warpgroup_a = static_cast<uint32_t>(warp / 4) * kHalfBytes;  // rows 64 * warpgroup
  run_pipeline<T, false, kTransposed>(d, steps, smem_a + warpgroup_a, smem_b, load, [&](int64_t step) {
    if (step == sparse_steps) scale_accumulators();  // the block-sparse part is complete
  });
  if (steps == sparse_steps) scale_accumulators();
  __syncthreads();

  // Epilogue: add the bias, stage the tile in shared memory, write whole 16-byte row pieces.
  T* tile = reinterpret_cast<T*>(smem);
  const T* bias = static_cast<const T*>(epilogue.bias);
#pragma unroll
  for (int j = 0; j < 16; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int m = accumulator_row(warp, lane, h), n = accumulator_col(lane, j);
      float lo = d[4 * j + 2 * h], hi = d[4 * j + 2 * h + 1];
      const int64_t feature = first * B + n;
      if (bias != nullptr && feature < out_features) {
        lo += device::to_float(bias[feature]);
        hi += device::to_float(bias[feature + 1]);
      }
      *reinterpret_cast<uint32_t*>(tile + m * kEpiloguePitch + n) = device::pack2<T>(lo, hi);
    }
  __syncthreads();
  const int64_t feature0 = first * B;
  const int64_t feature_end = feature0 + line_end < out_features ? feature0 + line_end : out_features;
  for (int c = tid; c < kTile * kTile / 8; c += kThreads) {
    const int m = c / (kTile / 8), n = (c % (kTile / 8)) * 8;
    const int64_t token = token0 + m, feature = feature0 + n;
    if (token < tokens && feature < feature_end) {
      *reinterpret_cast<uint4*>(out + token * out_features + feature) =
          *reinterpret_cast<const uint4*>(tile + m * kEpiloguePitch + n);
    }
  }
#else
  __trap();  // built without sm_90a; the host never launches this (see available())
#endif
}

// ----- grad_weight ----------------------------------------------------------------------------
// Both operands are [token][feature] tiles of 64 tokens x 128 features (M-/N-major); the block
// accumulates one token split and adds it into the float32 workspace.
template <typename T, int B>
__global__ void __launch_bounds__(kThreads, kBlocksPerSM) gradient_kernel(DeviceLayout layout, int64_t tokens,
                                                               int64_t tokens_per_split, const T* __restrict__ dy,
                                                               const T* __restrict__ x,
                                                               float* __restrict__ workspace) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = aligned_shared(smem_raw);
  const uint32_t smem_a = smem_address(smem);
  const uint32_t smem_b = smem_a + kStages * kOperandBytes;

  const int64_t* p = layout.gradient_pieces + 5 * static_cast<int64_t>(blockIdx.x);
  const int64_t row_begin = p[0], rows = p[1], cols = p[3];
  const int64_t* columns = layout.gradient_columns + p[2];
  const int64_t* piece_blocks = layout.gradient_blocks + p[4];
  const int64_t token_begin = static_cast<int64_t>(blockIdx.y) * tokens_per_split;
  const int64_t token_end = token_begin + tokens_per_split < tokens ? token_begin + tokens_per_split : tokens;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int64_t steps = token_end > token_begin ? (token_end - token_begin + kStep - 1) / kStep : 0;
  const int64_t m_end = rows * B, n_end = cols * B;

  // Each thread copies features f8 .. f8 + 7 of tokens tid / 16 + 16 i, for dY and for X.
  const int f8 = (tid % 16) * 8;
  const int64_t out_feature = row_begin * B + f8;
  const bool a_feature_ok = f8 < m_end && out_feature < layout.out_features;
  const int64_t in_feature = f8 < n_end ? columns[f8 / B] * B + f8 % B : 0;
  const bool b_feature_ok = f8 < n_end && in_feature < layout.in_features;
  auto load = [&](int64_t step) {
    const uint32_t stage = static_cast<uint32_t>(step % kStages) * kOperandBytes;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int kr = tid / 16 + 16 * i;
      const int64_t token = token_begin + step * kStep + kr;
      const bool token_ok = token < token_end;
      const bool a_ok = token_ok && a_feature_ok, b_ok = token_ok && b_feature_ok;
      const uint32_t offset = stage + swizzled_mn(kr, f8);
      copy16(smem_a + offset, a_ok ? dy + token * layout.out_features + out_feature : dy, a_ok);
      copy16(smem_b + offset, b_ok ? x + token * layout.in_features + in_feature : x, b_ok);
    }
  };

  const uint32_t warpgroup_a = static_cast<uint32_t>(warp / 4) * kHalfBytes;  // rows 64 * warpgroup
  float d[64];
  run_pipeline<T, true, true>(d, steps, smem_a + warpgroup_a, smem_b, load, [](int64_t) {});
  if (steps == 0) return;

#pragma unroll
  for (int j = 0; j < 16; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t m = accumulator_row(warp, lane, e / 2), n = accumulator_col(lane, j) + e % 2;
      if (m >= m_end || n >= n_end) continue;
      const int64_t block = piece_blocks[(m / B) * cols + n / B];
      if (block >= 0) atomicAdd(workspace + block * B * B + (m % B) * B + n % B, d[4 * j + e]);
    }
#else
  __trap();  // built without sm_90a; the host never launches this (see available())
#endif
}

template <typename T, int B, bool kTransposed>
cudaError_t launch_lines(const DeviceLayout& layout, int64_t tokens, const void* in, const void* values,
                         const Epilogue& epilogue, void* out, cudaStream_t stream) {
  const int64_t groups = kTransposed ? layout.num_col_groups : layout.num_row_groups;
  if (tokens == 0 || groups == 0) return cudaSuccess;
  auto kernel = line_group_kernel<T, B, kTransposed>;
  if (cudaError_t e = device::allow_shared_memory(kernel, kSharedBytes); e != cudaSuccess) return e;
  const dim3 grid(static_cast<unsigned>(groups), static_cast<unsigned>((tokens + kTile - 1) / kTile));
  kernel<<<grid, kThreads, kSharedBytes, stream>>>(layout, tokens, static_cast<const T*>(in),
                                                   static_cast<const T*>(values), epilogue, static_cast<T*>(out));
  return cudaGetLastError();
}

template <typename T, int B>
cudaError_t launch_gradient(const DeviceLayout& layout, int64_t tokens, const void* dy, const void* x,
                            float* workspace, cudaStream_t stream) {
  if (tokens == 0 || layout.num_gradient_pieces == 0) return cudaSuccess;
  const int64_t per_split = device::gradient_split_tokens(tokens, layout.num_gradient_pieces, kStep);
  auto kernel = gradient_kernel<T, B>;
  if (cudaError_t e = device::allow_shared_memory(kernel, kSharedBytes); e != cudaSuccess) return e;
  const dim3 grid(static_cast<unsigned>(layout.num_gradient_pieces),
                  static_cast<unsigned>((tokens + per_split - 1) / per_split));
  kernel<<<grid, kThreads, kSharedBytes, stream>>>(layout, tokens, per_split, static_cast<const T*>(dy),
                                                   static_cast<const T*>(x), workspace);
  return cudaGetLastError();
}

template <typename T>
cudaError_t dispatch(int which, const DeviceLayout& layout, int64_t tokens, const void* a, const void* b,
                     const Epilogue& epilogue, void* out, float* workspace, cudaStream_t stream) {
#define PIXELFLY_BLOCK_CASE(BS)                                                                      \
  case BS:                                                                                           \
    if (which == 0) return launch_lines<T, BS, false>(layout, tokens, a, b, epilogue, out, stream);  \
    if (which == 1) return launch_lines<T, BS, true>(layout, tokens, a, b, epilogue, out, stream);   \
    return launch_gradient<T, BS>(layout, tokens, a, b, workspace, stream);
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

bool available() {
#if defined(PIXELFLY_CUDA_SM90A)
  static const bool hopper = [] {
    int device = 0, major = 0, minor = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return false;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
    return major == 9 && minor == 0;
  }();
  return hopper;
#else
  return false;
#endif
}

cudaError_t forward(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* x, const void* values,
                    const Epilogue& epilogue, void* y, cudaStream_t stream) {
  return dispatch_kind(0, layout, kind, tokens, x, values, epilogue, y, nullptr, stream);
}

cudaError_t grad_input(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy,
                       const void* values, const Epilogue& epilogue, void* dx, cudaStream_t stream) {
  return dispatch_kind(1, layout, kind, tokens, dy, values, epilogue, dx, nullptr, stream);
}

cudaError_t accumulate_grad_weight(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy,
                                   const void* x, float* workspace, cudaStream_t stream) {
  return dispatch_kind(2, layout, kind, tokens, dy, x, Epilogue{}, nullptr, workspace, stream);
}

}  // namespace pixelfly::kernels::cuda::wgmma
