// dy u and dy^T projected in one pass over dy (low_rank_gradients.h), on Hopper.
//
// dy is read in 128-token x 64-feature stages (TMA boxes, 128-byte swizzled) by a producer warp
// into a four-deep ring, and each chunk's rows of u once, with the block's first token tile's
// stage of that chunk, into a region where they stay for its later tiles; eight consumer warps
// share each stage, four per product, with mma.sync (m16n8k16, float32 accumulators):
//   dy^T proj    warps 0-3: 16 features x width each, K = the stage's 128 tokens (the token
//                tile's projected rows are held in registers as B fragments, and with the ones
//                columns a fragment of ones made in registers); summed per thread in private
//                shared-memory slots over the block's token tiles
//   dy u         warps 4-7: 32 tokens x rank each, K = the stage's 64 features (u's 64 rows of
//                that chunk); summed in registers over the block's features
// Each dy element is loaded from shared memory once per product, and each chunk's rows of u once
// per dy u warp and token tile.
// The grid is splits x groups blocks: a block owns one range of features (a split, as many
// 64-feature chunks as its slots and rows of u fit in shared memory) and every groups-th token
// tile. So each element of dy is read from memory once; dy u's partial sums over the splits meet
// in a float32 buffer (each warp's 32 rows of a token tile added as one bulk reduction from a
// staging buffer, then one small pass writes it in the storage type; with one split the block
// writes it directly), and dy^T proj's partial sums over the groups are added into `product`
// once per block, chunk by chunk as its last token tile passes them, each warp's 16 rows of the
// chunk as one bulk reduction from its own slots of the chunk, which it no longer needs (16-byte
// reductions from each thread took 1-2 us longer at the paper's fc2 shapes, docs/perf.md
// version 40). Rank and width are template parameters (width is rank, or rank + 8 with eight
// columns of ones after projected's, whose products are dy's sums over the tokens; at most 40,
// the B fragments held in registers), so the products are straight-line code.
#include "kernels/cuda/low_rank_gradients.h"

#include "kernels/cuda/block_sparse_wgmma.cuh"
#include "kernels/cuda/device_primitives.cuh"
#include "kernels/cuda/launch_shape.h"
#include "kernels/cuda/tensor_map.h"

#include <algorithm>
#include <type_traits>

namespace pixelfly::kernels::cuda {
namespace {

constexpr int kTokens = 128;      // tokens of a stage (a token tile)
constexpr int kCols = 64;         // features of a stage (a chunk)
constexpr int kStages = 4;
constexpr int kWarps = 8;         // consumer warps
constexpr int kRoleWarps = 4;     // warps 0-3 compute dy^T proj, warps 4-7 dy u
constexpr int kThreads = kWarps * 32 + 32;  // and the producer warp
constexpr int kMaxWidth = 40;     // the projected tile's fragments are held in registers
constexpr int kDyBytes = kTokens * kCols * 2;  // 16 KB, rows of 128 bytes
constexpr int kColumnBoxBytes = 1024;          // u: 64 rows x 8 columns per box (a chunk's rows: rank / 8 boxes)
constexpr int kProjectedBoxBytes = 2048;       // projected: 128 rows x 8 columns per box
constexpr int kAlign = 1024;                   // the 128-byte swizzle repeats every 1 KB
constexpr int kSharedLimit = 227 * 1024;
constexpr int kBarrierBytes = ((2 * kStages + 2) * 8 + 15) / 16 * 16;  // the slots after them 16-byte aligned
constexpr int kDyURows = 32;  // token rows of a dy u warp's part of a tile
static_assert(kTokens == kLowRankTileTokens && kCols == kLowRankChunkFeatures, "the grid's byte count must match");

struct Plan {
  int rank_tiles = 0, chunks = 0, splits = 0, chunks_per_split = 0, token_tiles = 0, groups = 0;
  size_t shared = 0;
};

// Splits of at most as many 64-feature chunks as their dy^T proj slots and rows of u fit in shared
// memory beside the ring, the projected tile, the barriers and the dy u warps' staging buffers,
// times groups of token tiles, one block per multiprocessor (launch_shape.h chooses the split
// count).
Plan make_plan(int64_t tokens, int64_t out_features, int64_t rank, int64_t width, int multiprocessors) {
  Plan p;
  p.rank_tiles = static_cast<int>(rank / 8);
  const int width_tiles = static_cast<int>(width / 8);
  // A float4 per thread and width tile, and the chunk's rows of u.
  const int bytes_per_chunk = kRoleWarps * 32 * width_tiles * 16 + p.rank_tiles * kColumnBoxBytes;
  const int staging = kRoleWarps * kDyURows * static_cast<int>(rank) * 4;
  const int fixed = kAlign + kStages * kDyBytes + p.rank_tiles * kProjectedBoxBytes + kBarrierBytes + staging;
  const int chunks_fit = std::max(1, (kSharedLimit - fixed) / bytes_per_chunk);
  p.chunks = static_cast<int>((out_features + kCols - 1) / kCols);
  p.token_tiles = static_cast<int>((tokens + kTokens - 1) / kTokens);
  const LowRankGrid grid = low_rank_grid(p.chunks, chunks_fit, p.token_tiles, multiprocessors, rank, width);
  p.splits = static_cast<int>(grid.splits);
  p.chunks_per_split = static_cast<int>(grid.chunks_per_split);
  p.groups = static_cast<int>(grid.groups);
  p.shared = static_cast<size_t>(fixed) + static_cast<size_t>(p.chunks_per_split) * bytes_per_chunk;
  return p;
}

#if defined(PIXELFLY_CUDA_SM90A)

using device::barrier_arrive;
using device::barrier_arrive_expect;
using device::barrier_wait;
using device::smem_address;
using device::tma_load;

struct Params {
  int64_t tokens, out_features, rank, width;
  int chunks, splits, chunks_per_split, token_tiles, groups;
  void* grad_projected;
  float* product;
  float* sums;  // tokens x rank, float32 (splits > 1)
};

__device__ __forceinline__ void load_matrices_x4(uint32_t address, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}
__device__ __forceinline__ void load_matrices_x4_transposed(uint32_t address, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}
__device__ __forceinline__ void load_matrices_x2_transposed(uint32_t address, uint32_t (&r)[2]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(address));
}

// c += a b for one m16n8k16 tile (a: 16 x 16 row fragments, b: 16 x 8 column fragments).
template <typename T>
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
}

// The kernel for rank = 8 kRankTiles and width = 8 kWidthTiles.
template <typename T, int kRankTiles, int kWidthTiles>
__global__ void __launch_bounds__(kThreads, 1)
    low_rank_gradients_kernel(const __grid_constant__ CUtensorMap dy_map, const __grid_constant__ CUtensorMap u_map,
                              const __grid_constant__ CUtensorMap projected_map, Params p) {
  constexpr int kChunkRowsBytes = kRankTiles * kColumnBoxBytes;  // a chunk's rows of u
  constexpr int kSteps = kTokens / 16;  // k16 steps of dy^T proj over a token tile
  constexpr int kKSteps = kCols / 16;   // k16 steps of dy u over a chunk
  constexpr int kWidth = 8 * kWidthTiles, kRank = 8 * kRankTiles;
  static_assert(kWidthTiles == kRankTiles || kWidthTiles == kRankTiles + 1, "width is rank or rank + 8");
  const uint32_t ones = device::pack2<T>(1.f, 1.f);  // two 16-bit ones: a register of a B fragment of ones
  extern __shared__ unsigned char shared_raw[];
  const uint32_t raw = smem_address(shared_raw);
  const uint32_t stages = raw + ((kAlign - (raw & (kAlign - 1))) & (kAlign - 1));
  const uint32_t u_rows = stages + kStages * kDyBytes;  // chunk c's at u_rows + c * kChunkRowsBytes
  const uint32_t projected = u_rows + p.chunks_per_split * kChunkRowsBytes;
  const uint32_t full = projected + kRankTiles * kProjectedBoxBytes;
  const uint32_t empty = full + 8 * kStages;
  const uint32_t projected_full = empty + 8 * kStages, projected_empty = projected_full + 8;
  float4* const slots = reinterpret_cast<float4*>(shared_raw + (full + kBarrierBytes - raw));
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      device::barrier_init(full + 8 * s, 1);
      device::barrier_init(empty + 8 * s, kWarps);
    }
    device::barrier_init(projected_full, 1);
    device::barrier_init(projected_empty, kRoleWarps);
    device::barrier_init_fence();
  }
  __syncthreads();

  const int split = static_cast<int>(blockIdx.x) % p.splits, group = static_cast<int>(blockIdx.x) / p.splits;
  const int chunk_first = split * p.chunks_per_split;
  const int chunk_count = max(0, min(p.chunks, chunk_first + p.chunks_per_split) - chunk_first);
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane / 4, q = lane % 4;
  // The 128-byte swizzle XORs a dy row's 16-byte chunk index with row % 8; every row a lane
  // addresses below is lane % 8 plus a multiple of 8.
  const int swizzle = lane & 7;
  // The block walks its chunks starting at one that differs from group to group, so that the
  // blocks of a split, which run in step, add their sums into `product` at different places.
  auto chunk_at = [&](int i) { return (i + group) % chunk_count; };

  if (warp == kWarps) {  // producer
    if (lane != 0) return;
    uint32_t step = 0, tile_step = 0;
    for (int tile = group; tile < p.token_tiles; tile += p.groups, ++tile_step) {
      const int token0 = tile * kTokens;
      barrier_wait(projected_empty, (tile_step & 1u) ^ 1u);
      barrier_arrive_expect(projected_full, kRankTiles * kProjectedBoxBytes);
#pragma unroll
      for (int j = 0; j < kRankTiles; ++j) {
        tma_load(projected + j * kProjectedBoxBytes, &projected_map, j * 8, token0, projected_full);
      }
      for (int i = 0; i < chunk_count; ++i, ++step) {
        const int c = chunk_at(i);
        const uint32_t s = step % kStages, phase = (step / kStages) & 1u;
        barrier_wait(empty + 8 * s, phase ^ 1u);
        const uint32_t bar = full + 8 * s;
        const int feature0 = (chunk_first + c) * kCols;
        const bool first_tile = tile_step == 0;  // the chunk's rows of u come with it
        barrier_arrive_expect(bar, kDyBytes + (first_tile ? kChunkRowsBytes : 0));
        tma_load(stages + s * kDyBytes, &dy_map, feature0, token0, bar);
        if (first_tile) {
#pragma unroll
          for (int j = 0; j < kRankTiles; ++j) {
            tma_load(u_rows + c * kChunkRowsBytes + j * kColumnBoxBytes, &u_map, j * 8, feature0, bar);
          }
        }
      }
    }
    return;
  }

  if (warp < kRoleWarps) {
    // dy^T proj: features 16 warp .. 16 warp + 15 of each chunk, every width tile. The token
    // tile's projected rows are held as B fragments, the ones columns' as constants (rows past
    // the last token multiply dy's rows of zeros). Partial sums per chunk go to this thread's
    // slots, and on the block's last token tile from registers into `product`, four columns per
    // reduction, while the ring runs on (the last stages' copies are still in flight).
    const uint32_t a_offset =
        ((lane & 7) + (lane >> 4) * 8) * 128 + (((warp * 2 + ((lane >> 3) & 1)) ^ swizzle) << 4);
    float4* const my_slots = slots + warp * kWidthTiles * 32 + lane;
    constexpr int kSlotStride = kRoleWarps * kWidthTiles * 32;  // float4s from one chunk's slots to the next
    uint32_t step = 0, tile_step = 0;
    for (int tile = group; tile < p.token_tiles; tile += p.groups, ++tile_step) {
      const bool last_tile = tile + p.groups >= p.token_tiles;
      uint32_t proj[kSteps][kWidthTiles][2];
      barrier_wait(projected_full, tile_step & 1u);
#pragma unroll
      for (int ks = 0; ks < kSteps; ++ks) {
#pragma unroll
        for (int t = 0; t < kRankTiles; ++t) {
          load_matrices_x2_transposed(projected + t * kProjectedBoxBytes + ks * 256 + (lane & 15) * 16, proj[ks][t]);
        }
        if constexpr (kWidthTiles > kRankTiles) proj[ks][kRankTiles][0] = proj[ks][kRankTiles][1] = ones;
      }
      __syncwarp();
      if (lane == 0) barrier_arrive(projected_empty);
      for (int i = 0; i < chunk_count; ++i, ++step) {
        const int c = chunk_at(i);
        const uint32_t s = step % kStages, phase = (step / kStages) & 1u;
        barrier_wait(full + 8 * s, phase);
        const uint32_t dy = stages + s * kDyBytes;
        uint32_t a[kSteps][4];
#pragma unroll
        for (int ks = 0; ks < kSteps; ++ks) load_matrices_x4_transposed(dy + ks * 2048 + a_offset, a[ks]);
        __syncwarp();  // the stage goes back to the producer once its fragments are loaded
        if (lane == 0) barrier_arrive(empty + 8 * s);
        float4 sums[kWidthTiles];
#pragma unroll
        for (int t = 0; t < kWidthTiles; ++t) {
          sums[t] = tile_step == 0 ? make_float4(0.f, 0.f, 0.f, 0.f) : my_slots[c * kSlotStride + t * 32];
        }
        float part[kWidthTiles][4] = {};
#pragma unroll
        for (int ks = 0; ks < kSteps; ++ks) {
#pragma unroll
          for (int t = 0; t < kWidthTiles; ++t) mma<T>(part[t], a[ks], proj[ks][t]);
        }
#pragma unroll
        for (int t = 0; t < kWidthTiles; ++t) {
          sums[t].x += part[t][0];
          sums[t].y += part[t][1];
          sums[t].z += part[t][2];
          sums[t].w += part[t][3];
          if (!last_tile) my_slots[c * kSlotStride + t * 32] = sums[t];
        }
        if (!last_tile) continue;
        // The warp's slots of this chunk (16 rows x width float32, as many bytes) take its sums
        // as rows of `product` (sums[t]: row g, columns 8 t + 2 q and the next; row g + 8 the
        // same), once every lane has read its own, and go to L2 as one bulk reduction.
        const uint32_t rows = smem_address(slots + c * kSlotStride + warp * kWidthTiles * 32);
        __syncwarp();
#pragma unroll
        for (int t = 0; t < kWidthTiles; ++t) {
          device::store_shared_float2(rows + (g * kWidth + t * 8 + 2 * q) * 4, sums[t].x, sums[t].y);
          device::store_shared_float2(rows + ((g + 8) * kWidth + t * 8 + 2 * q) * 4, sums[t].z, sums[t].w);
        }
        device::fence_async_shared();
        __syncwarp();
        const int feature0 = (chunk_first + c) * kCols + warp * 16;
        const int valid_rows = min(16, static_cast<int>(p.out_features) - feature0);
        if (lane == 0 && valid_rows > 0) {
          device::bulk_reduce_add(p.product + static_cast<int64_t>(feature0) * kWidth, rows,
                                  static_cast<uint32_t>(valid_rows * kWidth * 4));
          device::tma_store_commit();
        }
      }
    }
    if (lane == 0) device::tma_store_wait_all();  // the slots stay until their reductions are done
    return;
  }

  // dy u: token rows 32 (warp - kRoleWarps) .. + 31 of each tile (two m16 tiles), every rank tile,
  // summed in registers over the block's chunks.
  const int rows0 = (warp - kRoleWarps) * 32;
  uint32_t a_offset[2];
#pragma unroll
  for (int m = 0; m < 2; ++m) a_offset[m] = (rows0 + m * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * 128;
  const int a_chunk = lane >> 4;
  // Lanes 0-15 address rank tile j's rows, lanes 16-31 tile j + 1's.
  const uint32_t u_offset = (lane >> 4) * kColumnBoxBytes + (lane & 15) * 16;
  auto load_u = [&](uint32_t u, int kk, uint32_t (&b)[kRankTiles][2]) {
#pragma unroll
    for (int j = 0; j + 1 < kRankTiles; j += 2) {
      uint32_t four[4];
      load_matrices_x4_transposed(u + j * kColumnBoxBytes + kk * 256 + u_offset, four);
      b[j][0] = four[0];
      b[j][1] = four[1];
      b[j + 1][0] = four[2];
      b[j + 1][1] = four[3];
    }
    if constexpr (kRankTiles % 2 == 1) {
      load_matrices_x2_transposed(u + (kRankTiles - 1) * kColumnBoxBytes + kk * 256 + (lane & 15) * 16,
                                  b[kRankTiles - 1]);
    }
  };
  // With splits: the warp's 32 rows of the tile staged as rows of `sums` (after the slots), added
  // by one bulk reduction once the one before has read them.
  const uint32_t staging = smem_address(slots + p.chunks_per_split * kRoleWarps * kWidthTiles * 32) +
                           (warp - kRoleWarps) * kDyURows * kRank * 4;
  uint32_t step = 0;
  for (int tile = group; tile < p.token_tiles; tile += p.groups) {
    float dyu[2][kRankTiles][4] = {};
    for (int i = 0; i < chunk_count; ++i, ++step) {
      const int c = chunk_at(i);
      const uint32_t s = step % kStages, phase = (step / kStages) & 1u;
      barrier_wait(full + 8 * s, phase);
      const uint32_t dy = stages + s * kDyBytes, u = u_rows + c * kChunkRowsBytes;
      uint32_t a[kKSteps][2][4], b[kKSteps][kRankTiles][2];
#pragma unroll
      for (int kk = 0; kk < kKSteps; ++kk) {
#pragma unroll
        for (int m = 0; m < 2; ++m) {
          load_matrices_x4(dy + a_offset[m] + (((kk * 2 + a_chunk) ^ swizzle) << 4), a[kk][m]);
        }
        load_u(u, kk, b[kk]);
      }
      __syncwarp();  // the stage goes back to the producer once its fragments are loaded
      if (lane == 0) barrier_arrive(empty + 8 * s);
#pragma unroll
      for (int kk = 0; kk < kKSteps; ++kk) {
#pragma unroll
        for (int m = 0; m < 2; ++m) {
#pragma unroll
          for (int j = 0; j < kRankTiles; ++j) mma<T>(dyu[m][j], a[kk][m], b[kk][j]);
        }
      }
    }
    // Written in the storage type (one split) or staged for a bulk reduction into the float32
    // sums that round_to_storage converts.
    const int64_t first_row = static_cast<int64_t>(tile) * kTokens + rows0;
    const bool stored = p.splits == 1;
    if (!stored) {
      if (lane == 0) device::tma_store_wait_read();  // the staging buffer's last reduction has read it
      __syncwarp();
    }
#pragma unroll
    for (int m = 0; m < 2; ++m)
#pragma unroll
      for (int j = 0; j < kRankTiles; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int row = m * 16 + g + h * 8, column = j * 8 + 2 * q;
          if (!stored) {
            device::store_shared_float2(staging + (row * kRank + column) * 4, dyu[m][j][2 * h], dyu[m][j][2 * h + 1]);
          } else if (first_row + row < p.tokens) {
            T* const out = static_cast<T*>(p.grad_projected) + (first_row + row) * p.rank + column;
            *reinterpret_cast<uint32_t*>(out) = device::pack2<T>(dyu[m][j][2 * h], dyu[m][j][2 * h + 1]);
          }
        }
    if (stored) continue;
    device::fence_async_shared();
    __syncwarp();
    const int64_t valid_rows = p.tokens - first_row < kDyURows ? p.tokens - first_row : kDyURows;
    if (lane == 0 && valid_rows > 0) {
      device::bulk_reduce_add(p.sums + first_row * kRank, staging, static_cast<uint32_t>(valid_rows * kRank * 4));
      device::tma_store_commit();
    }
  }
  if (lane == 0) device::tma_store_wait_all();  // the staging buffer stays until its reductions are done
}

template <typename T, int kRankTiles, int kWidthTiles>
cudaError_t launch_tiles(const CUtensorMap& dy_map, const CUtensorMap& u_map, const CUtensorMap& projected_map,
                         const Params& p, size_t shared, cudaStream_t stream) {
  constexpr auto kernel = low_rank_gradients_kernel<T, kRankTiles, kWidthTiles>;
  if (cudaError_t e = device::allow_shared_memory<kernel>(kSharedLimit); e != cudaSuccess) return e;
  kernel<<<static_cast<unsigned>(p.splits * p.groups), kThreads, shared, stream>>>(dy_map, u_map, projected_map, p);
  return cudaGetLastError();
}

// The instantiation for this rank and width: width is rank (no bias) or rank + 8 (at most kMaxWidth).
template <typename T, int kRankTiles>
cudaError_t launch_rank(const CUtensorMap& dy_map, const CUtensorMap& u_map, const CUtensorMap& projected_map,
                        const Params& p, size_t shared, cudaStream_t stream) {
  if (p.width == p.rank) {
    return launch_tiles<T, kRankTiles, kRankTiles>(dy_map, u_map, projected_map, p, shared, stream);
  }
  if constexpr (8 * (kRankTiles + 1) <= kMaxWidth) {
    return launch_tiles<T, kRankTiles, kRankTiles + 1>(dy_map, u_map, projected_map, p, shared, stream);
  }
  return cudaErrorInvalidValue;
}

template <typename T>
cudaError_t launch(const LowRankGradients& a, const Plan& plan, float* scratch, cudaStream_t stream) {
  const bool bf16 = std::is_same_v<T, __nv_bfloat16>;
  CUtensorMap dy_map{}, u_map{}, projected_map{};
  if (cudaError_t e = encode_tensor_map(&dy_map, a.grad_y, bf16, a.tokens, a.out_features, a.out_features, kTokens,
                                        kCols, 128);
      e != cudaSuccess) {
    return e;
  }
  if (cudaError_t e = encode_tensor_map(&u_map, a.u, bf16, a.out_features, a.rank, a.rank, kCols, 8, 0);
      e != cudaSuccess) {
    return e;
  }
  if (cudaError_t e =
          encode_tensor_map(&projected_map, a.projected, bf16, a.tokens, a.rank, a.projected_pitch, kTokens, 8, 0);
      e != cudaSuccess) {
    return e;
  }
  Params p{};
  p.tokens = a.tokens;
  p.out_features = a.out_features;
  p.rank = a.rank;
  p.width = a.width;
  p.chunks = plan.chunks;
  p.splits = plan.splits;
  p.chunks_per_split = plan.chunks_per_split;
  p.token_tiles = plan.token_tiles;
  p.groups = plan.groups;
  p.grad_projected = a.grad_projected;
  p.product = a.product;
  p.sums = scratch;
  cudaError_t e = cudaErrorInvalidValue;
  switch (plan.rank_tiles) {
    case 1: e = launch_rank<T, 1>(dy_map, u_map, projected_map, p, plan.shared, stream); break;
    case 2: e = launch_rank<T, 2>(dy_map, u_map, projected_map, p, plan.shared, stream); break;
    case 3: e = launch_rank<T, 3>(dy_map, u_map, projected_map, p, plan.shared, stream); break;
    case 4: e = launch_rank<T, 4>(dy_map, u_map, projected_map, p, plan.shared, stream); break;
    case 5: e = launch_rank<T, 5>(dy_map, u_map, projected_map, p, plan.shared, stream); break;
    default: break;
  }
  if (e != cudaSuccess || plan.splits == 1) return e;
  return round_to_storage(a.kind, scratch, a.grad_projected, a.tokens * a.rank, stream);
}

#endif  // PIXELFLY_CUDA_SM90A

}  // namespace

bool supports_low_rank_gradients(ScalarKind kind, int64_t out_features, int64_t rank, int64_t width) {
  return kind != ScalarKind::Float32 && out_features > 0 && out_features % 8 == 0 && rank > 0 && rank % 8 == 0 &&
         (width == rank || width == rank + 8) && width <= kMaxWidth &&
         wgmma::available();
}

int64_t low_rank_gradients_scratch_elements(int64_t tokens, int64_t out_features, int64_t rank, int64_t width) {
  const Plan plan = make_plan(tokens, out_features, rank, width, device::multiprocessors());
  return plan.splits > 1 ? tokens * rank : 0;
}

cudaError_t low_rank_gradients(const LowRankGradients& a, float* scratch, cudaStream_t stream) {
  if (!supports_low_rank_gradients(a.kind, a.out_features, a.rank, a.width) || a.tokens <= 0 ||
      a.projected_pitch < a.rank || a.projected_pitch % 8 != 0 || a.product == nullptr ||
      a.grad_projected == nullptr) {
    return cudaErrorInvalidValue;
  }
#if defined(PIXELFLY_CUDA_SM90A)
  const Plan plan = make_plan(a.tokens, a.out_features, a.rank, a.width, device::multiprocessors());
  if (plan.splits > 1 && scratch == nullptr) return cudaErrorInvalidValue;
  if (a.kind == ScalarKind::BFloat16) return launch<__nv_bfloat16>(a, plan, scratch, stream);
  return launch<__half>(a, plan, scratch, stream);
#else
  (void)scratch;
  (void)stream;
  return cudaErrorNotSupported;
#endif
}

}  // namespace pixelfly::kernels::cuda
