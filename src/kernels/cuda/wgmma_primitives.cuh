// Hopper warpgroup MMA (wgmma, sm_90a) building blocks shared by the block-sparse kernels and the
// wgmma rate probe in bench/: shared-memory matrix descriptors, the fence / commit / wait of
// asynchronous products, and the m64n8k16, m64n32k16, m64n128k16 and m64n192k16 products with float32
// accumulators.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace pixelfly::kernels::cuda::wgmma {

// wgmma shared-memory matrix descriptor: start address, leading and stride byte offsets, swizzle
// mode (1: 128 B, 2: 64 B, 3: 32 B). K-major: the leading offset is unused, the stride offset
// steps 8 rows. MN-major: the leading offset steps one swizzle width along M/N, the stride
// offset 8 rows along K.
__device__ __forceinline__ uint64_t descriptor(uint32_t address, uint32_t leading, uint32_t stride, uint64_t layout) {
  return static_cast<uint64_t>((address & 0x3FFFF) >> 4) | (static_cast<uint64_t>(leading >> 4) << 16) |
         (static_cast<uint64_t>(stride >> 4) << 32) | (layout << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from moving reads or writes of the accumulators across a wgmma wait.
template <int N>
__device__ __forceinline__ void fence_accumulators(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

#define PIXELFLY_D4(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3])
#define PIXELFLY_D16(i) PIXELFLY_D4(i), PIXELFLY_D4(i + 4), PIXELFLY_D4(i + 8), PIXELFLY_D4(i + 12)
#define PIXELFLY_R16(i)                                                                                     \
  "%" #i "0, %" #i "1, %" #i "2, %" #i "3, %" #i "4, %" #i "5, %" #i "6, %" #i "7, %" #i "8, %" #i "9, "
// Operands %0 .. %(N/2 - 1) the accumulators, then A, B, accumulate (a predicate), trans A, trans B.
#define PIXELFLY_WGMMA_8(TYPE)                                                                         \
  "{\n.reg .pred p;\nsetp.ne.b32 p, %6, 0;\n"                                                            \
  "wgmma.mma_async.sync.aligned.m64n8k16.f32." TYPE "." TYPE " "                                       \
  "{%0, %1, %2, %3}, %4, %5, p, 1, 1, %7, %8;\n}\n"
#define PIXELFLY_WGMMA_32(TYPE)                                                                        \
  "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"                                                           \
  "wgmma.mma_async.sync.aligned.m64n32k16.f32." TYPE "." TYPE " "                                      \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, "                           \
  "%16, %17, p, 1, 1, %19, %20;\n}\n"
#define PIXELFLY_WGMMA_128(TYPE)                                                                       \
  "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                                           \
  "wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE " "                                     \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                            \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                   \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                   \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "                  \
  "%64, %65, p, 1, 1, %67, %68;\n}\n"
#define PIXELFLY_WGMMA_192(TYPE)                                                                       \
  "{\n.reg .pred p;\nsetp.ne.b32 p, %98, 0;\n"                                                           \
  "wgmma.mma_async.sync.aligned.m64n192k16.f32." TYPE "." TYPE " "                                     \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, "                                                          \
  PIXELFLY_R16(1) PIXELFLY_R16(2) PIXELFLY_R16(3) PIXELFLY_R16(4) PIXELFLY_R16(5) PIXELFLY_R16(6)      \
  PIXELFLY_R16(7) PIXELFLY_R16(8)                                                                       \
  "%90, %91, %92, %93, %94, %95}, "                                                                     \
  "%96, %97, p, 1, 1, %99, %100;\n}\n"

// d (64 x N per warpgroup, N = 8, 32, 128 or 192; N / 2 accumulators per thread) = A (64 x 16) . B (16 x N)
// + d, or without the + d where `accumulate` is 0 (a tile's first product: no zeroing of the
// accumulators needed); kTransA / kTransB: the operand is M-/N-major in shared memory instead of
// K-major.
template <typename T, int kTransA, int kTransB, int kAccumulators>
__device__ __forceinline__ void mma_64xNx16(float (&d)[kAccumulators], uint64_t a, uint64_t b, uint32_t accumulate = 1) {
  static_assert(kAccumulators == 4 || kAccumulators == 16 || kAccumulators == 64 || kAccumulators == 96,
                "m64n8, m64n32, m64n128 or m64n192 products");
  constexpr bool bf16 = std::is_same_v<T, __nv_bfloat16>;
  if constexpr (kAccumulators == 4 && bf16) {
    asm volatile(PIXELFLY_WGMMA_8("bf16")
                 : PIXELFLY_D4(0)
                 : "l"(a), "l"(b), "r"(accumulate), "n"(kTransA), "n"(kTransB));
  } else if constexpr (kAccumulators == 4) {
    asm volatile(PIXELFLY_WGMMA_8("f16")
                 : PIXELFLY_D4(0)
                 : "l"(a), "l"(b), "r"(accumulate), "n"(kTransA), "n"(kTransB));
  } else if constexpr (kAccumulators == 16 && bf16) {
    asm volatile(PIXELFLY_WGMMA_32("bf16")
                 : PIXELFLY_D16(0)
                 : "l"(a), "l"(b), "r"(accumulate), "n"(kTransA), "n"(kTransB));
  } else if constexpr (kAccumulators == 16) {
    asm volatile(PIXELFLY_WGMMA_32("f16")
                 : PIXELFLY_D16(0)
                 : "l"(a), "l"(b), "r"(accumulate), "n"(kTransA), "n"(kTransB));
  } else if constexpr (kAccumulators == 64 && bf16) {
    asm volatile(PIXELFLY_WGMMA_128("bf16")
                 : PIXELFLY_D16(0), PIXELFLY_D16(16), PIXELFLY_D16(32), PIXELFLY_D16(48)
                 : "l"(a), "l"(b), "r"(accumulate), "n"(kTransA), "n"(kTransB));
  } else if constexpr (kAccumulators == 64) {
    asm volatile(PIXELFLY_WGMMA_128("f16")
                 : PIXELFLY_D16(0), PIXELFLY_D16(16), PIXELFLY_D16(32), PIXELFLY_D16(48)
                 : "l"(a), "l"(b), "r"(accumulate), "n"(kTransA), "n"(kTransB));
  } else if constexpr (bf16) {
    asm volatile(PIXELFLY_WGMMA_192("bf16")
                 : PIXELFLY_D16(0), PIXELFLY_D16(16), PIXELFLY_D16(32), PIXELFLY_D16(48), PIXELFLY_D16(64),
                   PIXELFLY_D16(80)
                 : "l"(a), "l"(b), "r"(accumulate), "n"(kTransA), "n"(kTransB));
  } else {
    asm volatile(PIXELFLY_WGMMA_192("f16")
                 : PIXELFLY_D16(0), PIXELFLY_D16(16), PIXELFLY_D16(32), PIXELFLY_D16(48), PIXELFLY_D16(64),
                   PIXELFLY_D16(80)
                 : "l"(a), "l"(b), "r"(accumulate), "n"(kTransA), "n"(kTransB));
  }
}
template <typename T, int kTransA, int kTransB>
__device__ __forceinline__ void mma_64x128x16(float (&d)[64], uint64_t a, uint64_t b, uint32_t accumulate = 1) {
  mma_64xNx16<T, kTransA, kTransB>(d, a, b, accumulate);
}
#undef PIXELFLY_WGMMA_192
#undef PIXELFLY_WGMMA_128
#undef PIXELFLY_WGMMA_32
#undef PIXELFLY_WGMMA_8
#undef PIXELFLY_R16
#undef PIXELFLY_D16
#undef PIXELFLY_D4

}  // namespace pixelfly::kernels::cuda::wgmma
