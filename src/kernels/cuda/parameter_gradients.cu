// PixelflyLinear's parameter gradients from their raw products (parameter_gradients.h): one
// grid-stride pass over the weight blocks, the low-rank factors and the bias, each thread
// summing its share of the mix's two dot products; per-block sums go to scratch, and the last
// block to arrive adds them up in block order and writes the mix's gradient.
#include "kernels/cuda/parameter_gradients.h"

#include "kernels/cuda/device_primitives.cuh"

namespace pixelfly::kernels::cuda {
namespace {

constexpr int kBlocks = 256;
constexpr int kThreads = 256;

using device::from_float;
using device::to_float;

__device__ __forceinline__ void store_scalar(void* p, ScalarKind kind, float value) {
  switch (kind) {
    case ScalarKind::BFloat16: *static_cast<__nv_bfloat16*>(p) = __float2bfloat16_rn(value); return;
    case ScalarKind::Float16: *static_cast<__half*>(p) = __float2half_rn(value); return;
    case ScalarKind::Float32: break;
  }
  *static_cast<float*>(p) = value;
}

// Sum of `value` over the block, valid in thread 0.
__device__ __forceinline__ float block_sum(float value, float* shared) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffffu, value, offset);
  if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = value;
  __syncthreads();
  float sum = 0.f;
  if (threadIdx.x == 0) {
    for (int w = 0; w < kThreads / 32; ++w) sum += shared[w];
  }
  return sum;
}

// scratch: kBlocks per-block sums, then the arrival counter (zero before the launch).
template <typename T>
__global__ void __launch_bounds__(kThreads) finish_kernel(ParameterGradients p, float* __restrict__ scratch) {
  const float g = device::load_scalar(p.mix, p.mix_kind), low_rank = 1.f - g;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const T* values = static_cast<const T*>(p.values);
  const T* u = static_cast<const T*>(p.u);
  T* grad_values = static_cast<T*>(p.grad_values);
  T* grad_u = static_cast<T*>(p.grad_u);
  T* grad_v = static_cast<T*>(p.grad_v);
  T* grad_bias = static_cast<T*>(p.grad_bias);

  float dot = 0.f;  // <dW, values> - <P[:, :r], u>, this thread's share
  for (int64_t i = first; i < p.weight_elements; i += stride) {
    const float sum = p.weight_sums[i];
    grad_values[i] = from_float<T>(g * sum);
    dot += sum * to_float(values[i]);
  }
  for (int64_t i = first; i < p.out_features * p.rank; i += stride) {
    const float sum = p.product[(i / p.rank) * p.product_pitch + i % p.rank];
    grad_u[i] = from_float<T>(low_rank * sum);
    dot -= sum * to_float(u[i]);
  }
  for (int64_t i = first; i < p.v_elements; i += stride) grad_v[i] = from_float<T>(low_rank * to_float(grad_v[i]));
  if (grad_bias != nullptr) {
    for (int64_t i = first; i < p.out_features; i += stride) {
      grad_bias[i] = from_float<T>(p.product[i * p.product_pitch + p.rank]);
    }
  }

  __shared__ float warp_sums[kThreads / 32];
  __shared__ bool last;
  const float block = block_sum(dot, warp_sums);
  unsigned* arrived = reinterpret_cast<unsigned*>(scratch + kBlocks);
  if (threadIdx.x == 0) {
    scratch[blockIdx.x] = block;
    __threadfence();
    last = atomicAdd(arrived, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last || threadIdx.x != 0) return;
  __threadfence();
  float total = 0.f;
  for (unsigned b = 0; b < gridDim.x; ++b) total += static_cast<volatile float*>(scratch)[b];
  store_scalar(p.grad_mix, p.mix_kind, total);
}

}  // namespace

int64_t parameter_gradients_scratch_elements() { return kBlocks + 1; }

cudaError_t finish_parameter_gradients(const ParameterGradients& p, float* scratch, cudaStream_t stream) {
  if (p.rank < 0 || p.product_pitch < p.rank + (p.grad_bias != nullptr ? 1 : 0) || scratch == nullptr) {
    return cudaErrorInvalidValue;
  }
  switch (p.kind) {
    case ScalarKind::BFloat16: finish_kernel<__nv_bfloat16><<<kBlocks, kThreads, 0, stream>>>(p, scratch); break;
    case ScalarKind::Float16: finish_kernel<__half><<<kBlocks, kThreads, 0, stream>>>(p, scratch); break;
    case ScalarKind::Float32: return cudaErrorInvalidValue;  // float32 layers take the composed path
  }
  return cudaGetLastError();
}

}  // namespace pixelfly::kernels::cuda
