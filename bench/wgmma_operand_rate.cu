// Rate of Hopper warpgroup MMA (wgmma.mma_async, bf16 in, float32 accumulators) in the operand
// arrangements a line tile of 256 tokens x 128 features can use, alone and behind a ring of
// stages that a producer warp fills: SM cycles per 64-deep K stage of the whole tile (both
// consumer warpgroups; at the tensor cores' peak, 4096 FLOP per cycle per SM, a stage takes 1024
// cycles). It splits the line kernels' time per stage into what the products cost in a given
// arrangement and what the ring (barrier hand-offs, copies into shared memory) adds. Torch-free.
//   bench_wgmma_operand_rate [steps] [small|normal] [activation MB] [producer delay ns] [shared KB]
//                            [output MB]
// (on sm_90a; shared KB: the shared memory each block asks for, at least the ring's 193 KB)
// Operand values: small (|x| < 0.03, the default) or normal (standard normal, as the operator
// benchmarks' torch.randn inputs): the tensor cores' power, and with it the clock, depends on them.
// Arrangements, per consumer warpgroup and 16-deep K slice:
//   tokens-M     two m64n128k16: A = 64 token rows each, B = the 128 features (the line kernels:
//                each warpgroup reads the weight slice twice, 24 KB of operands per slice per SM)
//   features-M   one m64n256k16: A = the warpgroup's 64 features, B = the 256 tokens (20 KB)
//   ...-regA     the same with A from registers (not read from shared memory: a bound)
// Rings of four stages filled by a producer warp, 48 KB a stage, from L2-resident data unless
// said: none (products only, on one stage), barriers (the full/empty hand-off, no copies), bulk (three 16 KB one-dimensional bulk copies a stage), tensor (the line kernels'
// TMA boxes at block 128: one 256 x 64 activation box and two 64 x 64 weight boxes, 128-byte
// swizzled), tensor-2 (one 128 x 64 weight box instead of two); and tensor-dram, the tensor ring
// with activations from a 69 MB matrix (more than L2 holds), four blocks sharing each 256-token
// band as the line kernels' tiles of one token band share their activation boxes; and
// tensor-stores (tokens-M only), the tensor ring with a short-K tile's epilogue every three
// stages as the line kernels do it: each warpgroup's 2 x 16 KB of bf16 results staged in a 16 KB
// output buffer a set at a time and stored by TMA into an output matrix (64 x 64 boxes, `output
// MB` of it, cycled through: more than L2 holds sends the writes on to device memory), the second
// set waiting for the first's stores to have read the buffer. Printed per
// arrangement and ring: cycles per stage (median block), their share of the peak, the cycles per
// stage the producer spent issuing copies, TFLOP/s and the clock the run implies.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/device_primitives.cuh"
#include "kernels/cuda/tensor_map.h"
#include "kernels/cuda/wgmma_primitives.cuh"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr int kConsumers = 256;
constexpr int kThreads = kConsumers + 32;
constexpr int kTokenBytes = 256 * 128;    // 256 token rows of 64 bf16 (128-byte swizzled rows)
constexpr int kFeatureBytes = 128 * 128;  // 128 feature rows
constexpr int kStageBytes = kTokenBytes + kFeatureBytes;
constexpr int kStages = 4;
constexpr size_t kShared = kStages * kStageBytes + 1024 + 2 * kStages * 8;
constexpr int kOutBoxBytes = 64 * 64 * 2;        // a 64 x 64 bf16 box of results
constexpr int kOutBytes = 2 * 2 * kOutBoxBytes;  // one 64 x 128 set of each warpgroup
constexpr int kTileSteps = 3;                    // stages per tile with tensor-stores (Mixer-B fc1 Y)
constexpr int kOutColumns = 1024;                // of the output matrix

enum Arrangement { kTokensM, kFeaturesM, kTokensMRegA, kFeaturesMRegA };
enum Ring { kNoRing, kBarriers, kBulk, kTensor, kTensor2, kTensorDram, kTensorStores };
const char* const kArrangementNames[] = {"tokens-M", "features-M", "tokens-M-regA", "features-M-regA"};
const char* const kRingNames[] = {"none", "barriers", "bulk", "tensor", "tensor-2", "tensor-dram", "tensor-stores"};
// The tensor rings' matrices: activations in bands of 256 x 1024 (512 KB each; 8 bands, 4 MB,
// unless told), weights 1024 x 1024 (2 MB); for tensor-dram, activations of 33 bands of 256
// tokens x 4096 features.
constexpr int kWeightRows = 1024, kColumns = 1024;
constexpr int kBands = 33, kDramColumns = 4096;

using namespace pixelfly::kernels::cuda::device;  // barriers, TMA copies
using namespace pixelfly::kernels::cuda::wgmma;   // descriptors, products, their fences

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// The wgmma forms the kernels do not have (the kernels' m64n128k16 with both operands in shared
// memory is wgmma_primitives.cuh's): float32 accumulators %0.. (64 of them for n128, 128 for
// n256), always accumulating (predicate p); SS: A and B descriptors follow the accumulators, RS:
// four A registers, then B's.
#define RATE_ACC_64 \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define RATE_ACC_128 RATE_ACC_64 ", " \
  "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
  "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, " \
  "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
  "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
#define RATE_BEGIN(N) "{\n.reg .pred p;\nsetp.eq.u32 p, 1, 1;\nwgmma.mma_async.sync.aligned.m64n" #N "k16.f32.bf16.bf16 {"
#define RATE_RS_128 RATE_BEGIN(128) RATE_ACC_64 "}, {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
#define RATE_SS_256 RATE_BEGIN(256) RATE_ACC_128 "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
#define RATE_RS_256 RATE_BEGIN(256) RATE_ACC_128 "}, {%128, %129, %130, %131}, %132, p, 1, 1, 0;\n}\n"

#define RATE_D4(h, i) "+f"(d[h][i]), "+f"(d[h][i + 1]), "+f"(d[h][i + 2]), "+f"(d[h][i + 3])
#define RATE_D16(h, i) RATE_D4(h, i), RATE_D4(h, i + 4), RATE_D4(h, i + 8), RATE_D4(h, i + 12)
#define RATE_D64(h) RATE_D16(h, 0), RATE_D16(h, 16), RATE_D16(h, 32), RATE_D16(h, 48)

// K-major operand rows of 128 bytes, 128-byte swizzle: 8 rows every 1024 bytes.
__device__ __forceinline__ uint64_t k_major(uint32_t address) { return descriptor(address, 16, 1024, 1); }
// One stage's products of one warpgroup: four 16-deep K slices.
template <int kArrangement>
__device__ __forceinline__ void stage_products(float (&d)[2][64], uint32_t stage, int warpgroup,
                                               const uint32_t (&a)[4]) {
  const uint32_t tokens = stage, features = stage + kTokenBytes;
  wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < 4; ++ks) {
    if constexpr (kArrangement == kTokensM || kArrangement == kTokensMRegA) {
      const uint64_t b = k_major(features + 32 * ks);
#pragma unroll
      for (int s = 0; s < 2; ++s) {
        const uint64_t da = k_major(tokens + (warpgroup * 128 + s * 64) * 128 + 32 * ks);
        if constexpr (kArrangement == kTokensM) {
          mma_64x128x16<__nv_bfloat16, 0, 0>(d[s], da, b);
        } else {
          if (s == 0) asm volatile(RATE_RS_128 : RATE_D64(0) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
          if (s == 1) asm volatile(RATE_RS_128 : RATE_D64(1) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
        }
      }
    } else {
      const uint64_t b = k_major(tokens + 32 * ks);
      const uint64_t da = k_major(features + warpgroup * 64 * 128 + 32 * ks);
      if constexpr (kArrangement == kFeaturesM) {
        asm volatile(RATE_SS_256 : RATE_D64(0), RATE_D64(1) : "l"(da), "l"(b));
      } else {
        asm volatile(RATE_RS_256 : RATE_D64(0), RATE_D64(1) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
      }
    }
  }
  wgmma_commit();
}

struct Sources {
  const unsigned char* bulk;  // bulk_stages stages of kStageBytes
  int64_t bulk_stages;
  int activation_bands;  // of the tensor rings' activation matrix
  int producer_delay_ns;  // the producer sleeps this long before each stage's copies
  int output_row_tiles;   // 256-row tiles of the output matrix (tensor-stores)
};
// A short-K tile's epilogue as the line kernels do it (tensor-stores): both sets of each
// warpgroup's results, as bf16, staged in its 16 KB of the output buffer a set at a time (the
// storer first waits until the stores before have read it) and stored by TMA as two 64 x 64
// boxes, into the 256 x 128 output tile `tile` of this block; the tile's products are complete.
// The products keep accumulating across tiles (the values do not matter here, the bytes do).
__device__ __forceinline__ void store_tile(float (&d)[2][64], uint32_t out_buffer, const CUtensorMap* output,
                                           const Sources& sources, int tile, int warpgroup) {
  const int thread = threadIdx.x % 128;
  const bool storer = thread == 0;
  const uint32_t buffer = out_buffer + warpgroup * 2 * kOutBoxBytes;
  const int t = static_cast<int>(blockIdx.x) + tile * static_cast<int>(gridDim.x);
  const int row0 = (t % sources.output_row_tiles) * 256 + warpgroup * 128;
  const int col0 = (t / sources.output_row_tiles) % (kOutColumns / 128) * 128;
  auto warpgroup_barrier = [&] {
    if (warpgroup == 0) {
      named_barrier<2, 128>();
    } else {
      named_barrier<3, 128>();
    }
  };
#pragma unroll
  for (int set = 0; set < 2; ++set) {
    if (storer) tma_store_wait_read();
    warpgroup_barrier();
#pragma unroll
    for (int c = 0; c < 8; ++c) {  // 16 bytes of results per thread and chunk, conflict-free
      uint32_t v[4];
#pragma unroll
      for (int m = 0; m < 4; ++m) v[m] = pack2<__nv_bfloat16>(d[set][8 * c + 2 * m], d[set][8 * c + 2 * m + 1]);
      asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(buffer + c * 2048 + thread * 16), "r"(v[0]),
                   "r"(v[1]), "r"(v[2]), "r"(v[3])
                   : "memory");
    }
    fence_async_shared();
    warpgroup_barrier();
    if (storer) {
      for (int h = 0; h < 2; ++h) tma_store(output, col0 + 64 * h, row0 + 64 * set, buffer + h * kOutBoxBytes);
      tma_store_commit();
    }
  }
}

// Each block: `steps` stages of one tile's products; cycles[block] = SM cycles of the consumers'
// loop, issue_cycles[block] = the producer's cycles issuing copies, sink keeps the accumulators live.
template <int kArrangement, int kRing>
__global__ void __launch_bounds__(kThreads, 1)
    rate_kernel(const __grid_constant__ CUtensorMap activations, const __grid_constant__ CUtensorMap weights,
                const __grid_constant__ CUtensorMap output, Sources sources, int steps, float operand_scale,
                long long* cycles, long long* issue_cycles, float* sink) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ unsigned char raw[];
  const uint32_t raw_address = smem_address(raw);
  const uint32_t base = (raw_address + 1023) & ~1023u;
  const uint32_t out_buffer = base + kStages * kStageBytes;  // tensor-stores
  const uint32_t full = out_buffer + (kRing == kTensorStores ? kOutBytes : 0), empty = full + 8 * kStages;
  const int tid = threadIdx.x, warp = tid / 32;
  // Operands: uniform in (-operand_scale, operand_scale).
  for (uint32_t o = 4 * tid; o < kStages * kStageBytes; o += 4 * kThreads) {
    const uint32_t h = o * 2654435761u ^ (o >> 7) * 40503u;
    const __nv_bfloat162 v = __floats2bfloat162_rn(((h & 0xffff) / 32768.f - 1.f) * operand_scale,
                                                   ((h >> 16) / 32768.f - 1.f) * operand_scale);
    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(base + o), "r"(*reinterpret_cast<const uint32_t*>(&v)) : "memory");
  }
  if (tid == 0) {
    for (int s = 0; s < kStages; ++s) {
      barrier_init(full + 8 * s, 1);
      barrier_init(empty + 8 * s, kConsumers);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  __syncthreads();

  if (warp == kConsumers / 32) {  // the producer warp (lane 0)
    if constexpr (kRing == kNoRing) return;
    if (tid % 32 != 0) return;
    long long issuing = 0;  // cycles spent issuing copies (a copy instruction stalls when the TMA unit is full)
    for (int i = 0; i < steps; ++i) {
      const uint32_t s = i % kStages, phase = (i / kStages) & 1;
      barrier_wait(empty + 8 * s, phase ^ 1);
      if (sources.producer_delay_ns > 0) __nanosleep(sources.producer_delay_ns);
      const long long issue_start = clock64();
      const uint32_t stage = base + s * kStageBytes, bar = full + 8 * s;
      if constexpr (kRing == kBarriers) {
        barrier_arrive(bar);
      } else if constexpr (kRing == kBulk) {
        barrier_arrive_expect(bar, kStageBytes);
        const unsigned char* from = sources.bulk + ((blockIdx.x * 5 + i) % sources.bulk_stages) * kStageBytes;
        for (int part = 0; part < 3; ++part) {
          asm volatile(
              "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                  stage + part * (kStageBytes / 3)),
              "l"(from + part * (kStageBytes / 3)), "r"(kStageBytes / 3), "r"(bar)
              : "memory");
        }
      } else if constexpr (kRing == kTensorDram) {
        barrier_arrive_expect(bar, kStageBytes);
        const int col = (i % (kDramColumns / 64)) * 64;
        tma_load(stage, &activations, col, (blockIdx.x / 4 % kBands) * 256, bar);
        const int weight_row = ((3 * (i / (kColumns / 64))) % (kWeightRows / 128)) * 128;
        tma_load(stage + kTokenBytes, &weights, col % kColumns, weight_row, bar);
        tma_load(stage + kTokenBytes + kFeatureBytes / 2, &weights, col % kColumns, weight_row + 64, bar);
      } else {  // tensor, tensor-2, tensor-stores
        barrier_arrive_expect(bar, kStageBytes);
        const int col = (i % (kColumns / 64)) * 64, band = i / (kColumns / 64) + blockIdx.x;
        tma_load(stage, &activations, col, (band % sources.activation_bands) * 256, bar);
        const int weight_row = ((3 * band) % (kWeightRows / 128)) * 128;
        tma_load(stage + kTokenBytes, &weights, col, weight_row, bar);
        if constexpr (kRing != kTensor2) {
          tma_load(stage + kTokenBytes + kFeatureBytes / 2, &weights, col, weight_row + 64, bar);
        }
      }
      issuing += clock64() - issue_start;
    }
    issue_cycles[blockIdx.x] = issuing;
    return;
  }

  const int warpgroup = warp / 4;
  float d[2][64];
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int i = 0; i < 64; ++i) d[h][i] = 0.f;
  const uint32_t a[4] = {0x3c003c00u + tid, 0x3c003c00u, 0x3c003c00u ^ tid, 0x3c003c00u};  // A from registers (regA)
  const long long start = clock64();
  if constexpr (kRing == kTensorStores) {
    // Tiles of kTileSteps stages as the line kernels walk them (their consume(), then the
    // epilogue): each tile's last stage released once its products are done, before the stores.
    // (A store under a condition inside one loop over the steps, as here folded with the stages
    // past the last whole tile, makes ptxas serialise every product: its C7515 note.)
    for (int tile = 0; tile < steps / kTileSteps; ++tile) {
      const int first = tile * kTileSteps;
      for (int i = first; i < first + kTileSteps; ++i) {
        barrier_wait(full + 8 * (i % kStages), (i / kStages) & 1);
        stage_products<kArrangement>(d, base + (i % kStages) * kStageBytes, warpgroup, a);
        wgmma_wait<1>();
        if (i > first) barrier_arrive(empty + 8 * ((i - 1) % kStages));
      }
      wgmma_wait<0>();
      fence_accumulators(d[0]);
      fence_accumulators(d[1]);
      barrier_arrive(empty + 8 * ((first + kTileSteps - 1) % kStages));
      store_tile(d, out_buffer, &output, sources, tile, warpgroup);
    }
    for (int i = steps / kTileSteps * kTileSteps; i < steps; ++i) {  // the stages past the last whole tile
      barrier_wait(full + 8 * (i % kStages), (i / kStages) & 1);
      stage_products<kArrangement>(d, base + (i % kStages) * kStageBytes, warpgroup, a);
      wgmma_wait<1>();
    }
  } else {
    for (int i = 0; i < steps; ++i) {
      const uint32_t s = kRing == kNoRing ? 0 : i % kStages, phase = (i / kStages) & 1;
      if (kRing != kNoRing) barrier_wait(full + 8 * s, phase);
      stage_products<kArrangement>(d, base + s * kStageBytes, warpgroup, a);
      wgmma_wait<1>();
      if (kRing != kNoRing && i > 0) barrier_arrive(empty + 8 * ((i - 1) % kStages));
    }
  }
  wgmma_wait<0>();
  fence_accumulators(d[0]);  // read only after the wait
  fence_accumulators(d[1]);
  const long long stop = clock64();
  if (kRing == kTensorStores && tid % 128 == 0) tma_store_wait_all();
  float sum = 0.f;
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int i = 0; i < 64; ++i) sum += d[h][i];
  sink[blockIdx.x * kConsumers + tid] = sum;
  if (tid == 0) cycles[blockIdx.x] = stop - start;
#else
  __trap();
#endif
}

struct Result {
  double cycles_per_stage, issue_per_stage, tflops, clock_ghz;
};

struct Buffers {
  float operand_scale;
  size_t shared_bytes;  // shared memory a block asks for (at least what the ring needs)
  CUtensorMap activations, activations_dram, weights_64, weights_128, output;
  Sources sources;
  long long* cycles;
  long long* issue_cycles;
  float* sink;
};

template <int kArrangement, int kRing>
Result measure(int blocks, int steps, const Buffers& buffers) {
  auto kernel = rate_kernel<kArrangement, kRing>;
  const size_t shared = std::max(kShared + (kRing == kTensorStores ? kOutBytes : 0), buffers.shared_bytes);
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)),
        "shared memory attribute");
  cudaEvent_t begin, end;
  check(cudaEventCreate(&begin), "event");
  check(cudaEventCreate(&end), "event");
  std::vector<float> times;
  std::vector<double> per_stage, issue_per_stage;
  for (int run = 0; run < 6; ++run) {
    check(cudaMemset(buffers.issue_cycles, 0, blocks * sizeof(long long)), "issue cycles");
    check(cudaEventRecord(begin), "record");
    kernel<<<blocks, kThreads, shared>>>(kRing == kTensorDram ? buffers.activations_dram : buffers.activations,
                                          kRing == kTensor2 ? buffers.weights_128 : buffers.weights_64,
                                          buffers.output, buffers.sources, steps, buffers.operand_scale, buffers.cycles, buffers.issue_cycles, buffers.sink);
    check(cudaEventRecord(end), "record");
    check(cudaEventSynchronize(end), "rate kernel");
    float ms = 0.f;
    check(cudaEventElapsedTime(&ms, begin, end), "elapsed");
    std::vector<long long> c(blocks), issue(blocks);
    check(cudaMemcpy(c.data(), buffers.cycles, blocks * sizeof(long long), cudaMemcpyDeviceToHost), "cycles");
    check(cudaMemcpy(issue.data(), buffers.issue_cycles, blocks * sizeof(long long), cudaMemcpyDeviceToHost), "issue");
    std::sort(c.begin(), c.end());
    std::sort(issue.begin(), issue.end());
    if (run == 0) continue;  // warm-up
    times.push_back(ms);
    per_stage.push_back(static_cast<double>(c[blocks / 2]) / steps);
    issue_per_stage.push_back(static_cast<double>(issue[blocks / 2]) / steps);
  }
  std::sort(times.begin(), times.end());
  std::sort(per_stage.begin(), per_stage.end());
  std::sort(issue_per_stage.begin(), issue_per_stage.end());
  const double ms = times[times.size() / 2], cps = per_stage[per_stage.size() / 2];
  const double flops = 2.0 * 256 * 128 * 64 * static_cast<double>(steps) * blocks;
  cudaEventDestroy(begin);
  cudaEventDestroy(end);
  return Result{cps, issue_per_stage[issue_per_stage.size() / 2], flops / (ms * 1e-3) / 1e12,
                cps * steps / (ms * 1e-3) / 1e9};
}

void print_row(int arrangement, int ring, const Result& r) {
  std::printf("| %-15s | %-11s | %7.0f | %5.2f | %6.0f | %7.0f | %4.2f |\n", kArrangementNames[arrangement],
              kRingNames[ring], r.cycles_per_stage, 1024.0 / r.cycles_per_stage, r.issue_per_stage, r.tflops, r.clock_ghz);
}

template <int kArrangement>
void measure_rings(int blocks, int steps, const Buffers& buffers) {
  // With A in registers and no ring, ptxas serialises the products for want of registers (C7512):
  // those arrangements are measured behind the rings only.
  constexpr bool kRegA = kArrangement == kTokensMRegA || kArrangement == kFeaturesMRegA;
  if constexpr (!kRegA) print_row(kArrangement, kNoRing, measure<kArrangement, kNoRing>(blocks, steps, buffers));
  print_row(kArrangement, kBarriers, measure<kArrangement, kBarriers>(blocks, steps, buffers));
  print_row(kArrangement, kBulk, measure<kArrangement, kBulk>(blocks, steps, buffers));
  print_row(kArrangement, kTensor, measure<kArrangement, kTensor>(blocks, steps, buffers));
  print_row(kArrangement, kTensor2, measure<kArrangement, kTensor2>(blocks, steps, buffers));
  print_row(kArrangement, kTensorDram, measure<kArrangement, kTensorDram>(blocks, steps, buffers));
  if constexpr (kArrangement == kTokensM) {
    print_row(kArrangement, kTensorStores, measure<kArrangement, kTensorStores>(blocks, steps, buffers));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 4000;
  if (steps < 8) {
    std::fprintf(stderr, "steps: %d, expected at least 8\n", steps);
    return 2;
  }
  const std::string values = argc > 2 ? argv[2] : "small";
  if (values != "small" && values != "normal") {
    std::fprintf(stderr, "operand values: '%s', expected small or normal\n", values.c_str());
    return 2;
  }
  const int activation_mb = argc > 3 ? std::atoi(argv[3]) : 4;
  if (activation_mb < 1 || activation_mb > 1024) {
    std::fprintf(stderr, "activation megabytes: %d, expected 1 .. 1024\n", activation_mb);
    return 2;
  }
  const int activation_bands = 2 * activation_mb;
  const int producer_delay_ns = argc > 4 ? std::atoi(argv[4]) : 0;
  const int shared_kb = argc > 5 ? std::atoi(argv[5]) : 0;
  const int output_mb = argc > 6 ? std::atoi(argv[6]) : 256;
  if (output_mb < 1 || output_mb > 4096) {
    std::fprintf(stderr, "output megabytes: %d, expected 1 .. 4096\n", output_mb);
    return 2;
  }
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "device properties");
  if (prop.major != 9) {
    std::fprintf(stderr, "device %s is compute capability %d.%d; this benchmark needs sm_90a\n", prop.name, prop.major,
                 prop.minor);
    return 2;
  }
  const int blocks = prop.multiProcessorCount;
  Buffers buffers{};
  buffers.operand_scale = values == "small" ? 1.f / 32 : 1.7f;  // 1.7: a standard normal's spread
  buffers.sources.bulk_stages = 170;  // 8.2 MB: stays in L2
  const size_t bulk_bytes = buffers.sources.bulk_stages * kStageBytes;
  buffers.sources.activation_bands = activation_bands;
  buffers.sources.producer_delay_ns = producer_delay_ns;
  buffers.shared_bytes = static_cast<size_t>(shared_kb) * 1024;
  const int64_t activation_rows = 256 * static_cast<int64_t>(activation_bands);
  const size_t matrix_elements = static_cast<size_t>(activation_rows + kWeightRows) * kColumns;
  unsigned char* bulk = nullptr;
  uint16_t* matrices = nullptr;
  uint16_t* dram_activations = nullptr;
  const size_t dram_elements = static_cast<size_t>(kBands) * 256 * kDramColumns;
  check(cudaMalloc(&bulk, bulk_bytes), "bulk source");
  check(cudaMalloc(&matrices, matrix_elements * 2), "tensor sources");
  check(cudaMalloc(&dram_activations, dram_elements * 2), "tensor-dram source");
  check(cudaMalloc(&buffers.cycles, blocks * sizeof(long long)), "cycles");
  check(cudaMalloc(&buffers.issue_cycles, blocks * sizeof(long long)), "issue cycles");
  check(cudaMalloc(&buffers.sink, blocks * kConsumers * sizeof(float)), "sink");
  // The output matrix: 256-row tiles of kOutColumns bf16 columns, 512 KB each.
  buffers.sources.output_row_tiles = 2 * output_mb;
  const int64_t output_rows = 256 * static_cast<int64_t>(buffers.sources.output_row_tiles);
  uint16_t* output = nullptr;
  check(cudaMalloc(&output, static_cast<size_t>(output_rows) * kOutColumns * 2), "output matrix");
  {
    std::vector<uint16_t> host(std::max({bulk_bytes / 2, matrix_elements, dram_elements}));
    std::mt19937 generator(1);
    std::normal_distribution<float> normal(0.f, values == "small" ? 1.f / 64 : 1.f);
    for (size_t i = 0; i < host.size(); ++i) {
      const __nv_bfloat16 v = __float2bfloat16(normal(generator));
      host[i] = *reinterpret_cast<const uint16_t*>(&v);
    }
    check(cudaMemcpy(bulk, host.data(), bulk_bytes, cudaMemcpyHostToDevice), "bulk source copy");
    check(cudaMemcpy(matrices, host.data(), matrix_elements * 2, cudaMemcpyHostToDevice), "tensor source copy");
    check(cudaMemcpy(dram_activations, host.data(), dram_elements * 2, cudaMemcpyHostToDevice), "tensor-dram copy");
  }
  buffers.sources.bulk = bulk;
  const uint16_t* weights = matrices + static_cast<size_t>(activation_rows) * kColumns;
  using pixelfly::kernels::cuda::encode_tensor_map;
  check(encode_tensor_map(&buffers.activations, matrices, true, activation_rows, kColumns, kColumns, 256, 64, 128),
        "activation tensor map");
  check(encode_tensor_map(&buffers.activations_dram, dram_activations, true, static_cast<int64_t>(kBands) * 256,
                          kDramColumns, kDramColumns, 256, 64, 128),
        "tensor-dram activation tensor map");
  check(encode_tensor_map(&buffers.weights_64, weights, true, kWeightRows, kColumns, kColumns, 64, 64, 128),
        "weight tensor map (64-row boxes)");
  check(encode_tensor_map(&buffers.weights_128, weights, true, kWeightRows, kColumns, kColumns, 128, 64, 128),
        "weight tensor map (128-row boxes)");
  check(encode_tensor_map(&buffers.output, output, true, output_rows, kOutColumns, kOutColumns, 64, 64, 128),
        "output tensor map");
  std::printf("%s, %d SMs, %d stages per block, %s operands, %d MB of tensor-ring activations, %d MB of output "
              "(tensor-stores); cycles per 64-deep stage of a 256 x 128 tile (1024 at peak), cycles per stage the "
              "producer spent issuing copies\n",
              prop.name, blocks, steps, values.c_str(), activation_mb, output_mb);
  std::printf("| arrangement     | ring        | cycles  | peak  | issue   | TFLOP/s | GHz  |\n");
  std::printf("|-----------------|-------------|---------|-------|---------|---------|------|\n");
  measure_rings<kTokensM>(blocks, steps, buffers);
  measure_rings<kFeaturesM>(blocks, steps, buffers);
  measure_rings<kTokensMRegA>(blocks, steps, buffers);
  measure_rings<kFeaturesMRegA>(blocks, steps, buffers);
  cudaFree(bulk);
  cudaFree(matrices);
  cudaFree(dram_activations);
  cudaFree(output);
  cudaFree(buffers.cycles);
  cudaFree(buffers.issue_cycles);
  cudaFree(buffers.sink);
  return 0;
}
