// Small building blocks of the CUDA kernels: asynchronous global -> shared copies (cp.async),
// shared-memory addresses, float <-> 16-bit conversions, and the host helpers that size launches
// for the current device. No __global__ functions here: a kernel template instantiated in two
// translation units would be registered twice.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace pixelfly::kernels::cuda::device {

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global -> shared copy; zero-fills the destination when `valid` is false (then `src`
// is not read but must still be a valid address).
__device__ __forceinline__ void copy16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void wait_pending() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

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

// Number of multiprocessors of the current device (read once).
inline int multiprocessors() {
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

// Tokens per split of the weight gradient's token reduction: about two waves of thread blocks
// over `pieces` tiles, each split at least 256 tokens and a whole number of `step`s long.
inline int64_t gradient_split_tokens(int64_t tokens, int64_t pieces, int64_t step) {
  const int64_t max_splits = tokens / 256 > 1 ? tokens / 256 : 1;
  int64_t splits = (2 * multiprocessors() + pieces - 1) / pieces;
  splits = splits < 1 ? 1 : (splits > max_splits ? max_splits : splits);
  return ((tokens + splits - 1) / splits + step - 1) / step * step;
}

}  // namespace pixelfly::kernels::cuda::device
