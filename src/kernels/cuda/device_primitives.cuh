// Small building blocks of the CUDA kernels: transaction barriers (mbarrier), tensor-memory-
// accelerator copies, stores and reductions (TMA), shared-memory addresses, thread-block
// clusters' barrier and distributed shared memory, float <-> 16-bit conversions, and the host
// helpers that size launches for the current device. No __global__ functions here: a kernel
// template instantiated in two translation units would be registered twice.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

#include "kernels/cuda/block_sparse_cuda.h"

namespace pixelfly::kernels::cuda::device {

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// ----- mbarriers (shared-memory transaction barriers) ---------------------------------------
__device__ __forceinline__ void barrier_init(uint32_t bar, uint32_t arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(arrivals) : "memory");
}
// Makes initialised barriers visible to the tensor memory accelerator (the async proxy).
__device__ __forceinline__ void barrier_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void barrier_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Arrives and announces `bytes` of copies that will complete on this barrier's current phase.
__device__ __forceinline__ void barrier_arrive_expect(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// Blocks until the phase with parity `parity` has completed.
__device__ __forceinline__ void barrier_wait(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (!done);
}

// ----- TMA (tensor memory accelerator) copies through a __grid_constant__ CUtensorMap ---------
// Global -> shared box at (col, row) of the map's matrix; completes `bytes` on barrier `bar`.
__device__ __forceinline__ void tma_load(uint32_t dst, const void* map, int col, int row, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(col), "r"(row), "r"(bar)
      : "memory");
}
// Shared -> global box at (col, row); tma_store_commit closes this thread's group of stores.
__device__ __forceinline__ void tma_store(const void* map, int col, int row, uint32_t src) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];\n" ::"l"(
                   reinterpret_cast<uint64_t>(map)),
               "r"(col), "r"(row), "r"(src)
               : "memory");
}
// Adds a shared-memory box into the float32 map's matrix at (col, row), in L2, as one bulk
// operation (rows and columns outside the matrix are dropped); a store group like tma_store's.
__device__ __forceinline__ void tma_reduce_add(const void* map, int col, int row, uint32_t src) {
  asm volatile("cp.reduce.async.bulk.tensor.2d.global.shared::cta.add.tile.bulk_group [%0, {%1, %2}], [%3];\n" ::"l"(
                   reinterpret_cast<uint64_t>(map)),
               "r"(col), "r"(row), "r"(src)
               : "memory");
}
// dst[0 .. bytes / 4) += the float32 values at src, in L2, as one bulk operation (dst and src
// 16-byte aligned, bytes a multiple of 16); a store group like tma_store's.
__device__ __forceinline__ void bulk_reduce_add(float* dst, uint32_t src, uint32_t bytes) {
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(dst), "r"(src),
               "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void tma_store_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
// Waits until this thread's committed stores (and bulk reductions) have read their shared memory
// (it may be reused).
__device__ __forceinline__ void tma_store_wait_read() {
  asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
}
// Waits until this thread's committed stores (and bulk reductions) have completed.
__device__ __forceinline__ void tma_store_wait_all() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }
// Orders this thread's shared-memory writes before later async-proxy (TMA, wgmma) reads.
__device__ __forceinline__ void fence_async_shared() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Barrier `kId` (1..15; 0 is __syncthreads) over `kThreads` threads of the block.
template <int kId, int kThreads>
__device__ __forceinline__ void named_barrier() {
  asm volatile("bar.sync %0, %1;\n" ::"n"(kId), "n"(kThreads) : "memory");
}

// Moves registers between the warpgroups of a block (setmaxnreg, sm_90a): every warp of a
// warpgroup calls the same one; raising waits until other warpgroups have lowered theirs. The
// kernel's register count at entry must be known to ptxas (launch bounds with a block count).
template <int kRegisters>
__device__ __forceinline__ void raise_registers() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
}
template <int kRegisters>
__device__ __forceinline__ void lower_registers() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
}

// 16 bytes from global to shared memory without passing through registers (cp.async; with
// `bytes` 0 nothing is read and zeros are written), and the wait for this thread's copies.
__device__ __forceinline__ void copy16_async(uint32_t dst, const void* src, uint32_t bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void copy_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

__device__ __forceinline__ void store_shared(uint32_t address, uint32_t v) {
  asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(address), "r"(v) : "memory");
}

__device__ __forceinline__ uint32_t load_shared(uint32_t address) {
  uint32_t v;
  asm volatile("ld.shared.b32 %0, [%1];\n" : "=r"(v) : "r"(address) : "memory");
  return v;
}

// Four 8 x 8 matrices of 16-bit values from a warp's registers to shared memory (stmatrix):
// lane l gives the address of row l % 8 of matrix l / 8 (16 contiguous bytes); v[i] holds
// matrix i's elements at row l / 4, columns 2 (l % 4) and 2 (l % 4) + 1.
__device__ __forceinline__ void store_matrices(uint32_t address, const uint32_t (&v)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(address), "r"(v[0]),
               "r"(v[1]), "r"(v[2]), "r"(v[3])
               : "memory");
}

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Two floats rounded to the 16-bit type and packed low, high.
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

// The two 16-bit values packed low, high in `v`, as floats.
template <typename T>
__device__ __forceinline__ float2 unpack2(uint32_t v);
template <>
__device__ __forceinline__ float2 unpack2<__nv_bfloat16>(uint32_t v) {
  return make_float2(__uint_as_float(v << 16), __uint_as_float(v & 0xffff0000u));
}
template <>
__device__ __forceinline__ float2 unpack2<__half>(uint32_t v) {
  return __half22float2(*reinterpret_cast<const __half2*>(&v));
}

// Four 16-bit values packed in 8 bytes, and back.
template <typename T>
__device__ __forceinline__ float4 unpack4(uint2 v) {
  const float2 lo = unpack2<T>(v.x), hi = unpack2<T>(v.y);
  return make_float4(lo.x, lo.y, hi.x, hi.y);
}
template <typename T>
__device__ __forceinline__ uint2 pack4(float4 v) {
  return make_uint2(pack2<T>(v.x, v.y), pack2<T>(v.z, v.w));
}

// Four consecutive elements from global memory as floats: one 16-byte load in float32, an
// 8-byte one in 16 bits. p is aligned to four elements.
__device__ __forceinline__ float4 load4(const float* p) { return __ldg(reinterpret_cast<const float4*>(p)); }
template <typename T>
__device__ __forceinline__ float4 load4(const T* p) {
  return unpack4<T>(__ldg(reinterpret_cast<const uint2*>(p)));
}

// ----- thread-block clusters (sm_90) ---------------------------------------------------------
// Every thread of every block of the cluster waits here; shared-memory writes before it are
// visible to every thread of the cluster after it. All the threads of a warp call it together.
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
// This block's rank within its cluster.
__device__ __forceinline__ uint32_t cluster_rank() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return r;
}
// 16 bytes from the shared memory of the cluster's block `rank`, at the address `local` has in
// this block's.
__device__ __forceinline__ float4 load_cluster_float4(uint32_t local, uint32_t rank) {
  uint32_t remote;
  float4 v;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(local), "r"(rank));
  asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];\n"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "r"(remote)
               : "memory");
  return v;
}
__device__ __forceinline__ void store_shared_float2(uint32_t address, float a, float b) {
  asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(address), "f"(a), "f"(b) : "memory");
}
__device__ __forceinline__ void store_shared_float4(uint32_t address, float4 v) {
  asm volatile("st.shared.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"r"(address), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w)
               : "memory");
}
__device__ __forceinline__ float4 load_shared_float4(uint32_t address) {
  float4 v;
  asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];\n" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "r"(address)
               : "memory");
  return v;
}

// p[0] += a, p[1] += b as one vector reduction in global memory (sm_90; p 8-byte aligned):
// half the atomic operations of two atomicAdds.
__device__ __forceinline__ void add2_global(float* p, float a, float b) {
  asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(p), "f"(a), "f"(b) : "memory");
}

// A scalar in device memory stored as `kind`, as a float.
__device__ __forceinline__ float load_scalar(const void* p, ScalarKind kind) {
  switch (kind) {
    case ScalarKind::BFloat16: return __bfloat162float(*static_cast<const __nv_bfloat16*>(p));
    case ScalarKind::Float16: return __half2float(*static_cast<const __half*>(p));
    case ScalarKind::Float32: break;
  }
  return *static_cast<const float*>(p);
}

// A mix weight in device memory stored as `kind`: the value, or with `logit` sigmoid(value).
__device__ __forceinline__ float load_mix(const void* p, ScalarKind kind, bool logit) {
  const float value = load_scalar(p, kind);
  return logit ? 1.f / (1.f + expf(-value)) : value;
}

// Number of multiprocessors of the current device (read once).
inline int multiprocessors() {
  static const int count = [] {
    int device = 0, sms = 132;
    if (cudaGetDevice(&device) == cudaSuccess) cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    return sms;
  }();
  return count;
}

// Lets kKernel use `bytes` of dynamic shared memory (always the same bytes for one kernel) on the
// current device: set once per device, since the attribute call costs host time on every launch.
template <auto kKernel>
cudaError_t allow_shared_memory(size_t bytes) {
  static std::atomic<uint64_t> devices_done{0};
  int device = 0;
  if (cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return e;
  const uint64_t bit = device < 64 ? uint64_t{1} << device : 0;
  if (bit != 0 && (devices_done.load(std::memory_order_acquire) & bit) != 0) return cudaSuccess;
  const cudaError_t e =
      cudaFuncSetAttribute(kKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (e == cudaSuccess) devices_done.fetch_or(bit, std::memory_order_release);
  return e;
}

}  // namespace pixelfly::kernels::cuda::device
