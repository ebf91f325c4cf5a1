// PixelflyLinear's parameter gradients from their raw products (parameter_gradients.h): one
// grid-stride pass over a single index space that holds the weight blocks (four elements per
// item), then u's elements, v's and the bias's, each thread summing its share of the mix's two dot
// products; per-block sums go to scratch, and the last block to arrive adds them up in a fixed
// order and writes the mix's gradient. The grid fills every multiprocessor (kBlocksPerSM blocks
// each): the pass is a stream of small loads, and its speed is the number of them in flight; with
// one index space a thread of a grid that covers the items makes one round trip to memory, not
// one per part, and an item of v loads its partial sums all at once.
#include "kernels/cuda/parameter_gradients.h"

#include "kernels/cuda/device_primitives.cuh"

namespace pixelfly::kernels::cuda {
namespace {

constexpr int kBlocksPerSM = 8;
constexpr int kThreads = 256;

int grid_blocks() { return kBlocksPerSM * device::multiprocessors(); }

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

// scratch: one sum per block, then the arrival counter (zero before the launch).
template <typename T>
__global__ void __launch_bounds__(kThreads) finish_kernel(ParameterGradients p, float* __restrict__ scratch) {
  const float g = device::load_mix(p.mix, p.mix_kind, p.mix_logit), low_rank = 1.f - g;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const T* values = static_cast<const T*>(p.values);
  const T* u = static_cast<const T*>(p.u);
  T* grad_values = static_cast<T*>(p.grad_values);
  T* grad_u = static_cast<T*>(p.grad_u);
  T* grad_v = static_cast<T*>(p.grad_v);
  T* grad_bias = static_cast<T*>(p.grad_bias);

  float dot = 0.f;  // <dW, values> - <P[:, :r], u>, this thread's share
  const float4* sums4 = reinterpret_cast<const float4*>(p.weight_sums);
  const uint2* values4 = reinterpret_cast<const uint2*>(values);
  uint2* grad_values4 = reinterpret_cast<uint2*>(grad_values);
  const int64_t u_begin = p.weight_elements / 4, v_begin = u_begin + p.out_features * p.rank,
                bias_begin = v_begin + p.v_elements, items = bias_begin + (grad_bias != nullptr ? p.out_features : 0);
  for (int64_t j = first; j < items; j += stride) {
    if (j < u_begin) {
      const float4 sum = sums4[j], w = device::unpack4<T>(values4[j]);
      grad_values4[j] = device::pack4<T>(make_float4(g * sum.x, g * sum.y, g * sum.z, g * sum.w));
      dot += sum.x * w.x + sum.y * w.y + sum.z * w.z + sum.w * w.w;
    } else if (j < v_begin) {
      const int64_t i = j - u_begin;
      const float sum = p.product[(i / p.rank) * p.product_pitch + i % p.rank];
      grad_u[i] = from_float<T>(low_rank * sum);
      dot -= sum * to_float(u[i]);
    } else if (j < bias_begin) {
      const int64_t i = j - v_begin;
      float partial[kMaxVPartials];
#pragma unroll
      for (int s = 0; s < kMaxVPartials; ++s) partial[s] = s < p.v_partials ? p.v_sums[s * p.v_elements + i] : 0.f;
      float sum = 0.f;
#pragma unroll
      for (int s = 0; s < kMaxVPartials; ++s) sum += partial[s];
      grad_v[i] = from_float<T>(low_rank * sum);
    } else {
      const int64_t i = j - bias_begin;
      grad_bias[i] = from_float<T>(p.product[i * p.product_pitch + p.rank]);
    }
  }

  __shared__ float warp_sums[kThreads / 32];
  __shared__ bool last;
  const float block = block_sum(dot, warp_sums);
  unsigned* arrived = reinterpret_cast<unsigned*>(scratch + gridDim.x);
  if (threadIdx.x == 0) {
    scratch[blockIdx.x] = block;
    __threadfence();
    last = atomicAdd(arrived, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  float share = 0.f;  // thread t adds blocks t, t + kThreads, ... in order, then the block sums the shares
  for (unsigned b = threadIdx.x; b < gridDim.x; b += kThreads) share += static_cast<volatile float*>(scratch)[b];
  const float total = block_sum(share, warp_sums);
  if (threadIdx.x == 0) store_scalar(p.grad_mix, p.mix_kind, p.mix_logit ? total * g * low_rank : total);
}

}  // namespace

int64_t parameter_gradients_scratch_elements() { return grid_blocks() + 1; }

cudaError_t finish_parameter_gradients(const ParameterGradients& p, float* scratch, cudaStream_t stream) {
  if (p.rank < 0 || p.product_pitch < p.rank + (p.grad_bias != nullptr ? 1 : 0) || scratch == nullptr ||
      p.v_sums == nullptr || p.v_partials < 1 || p.v_partials > kMaxVPartials || p.weight_elements % 4 != 0) {
    return cudaErrorInvalidValue;
  }
  if (reinterpret_cast<uintptr_t>(p.weight_sums) % 16 != 0 || reinterpret_cast<uintptr_t>(p.values) % 8 != 0 ||
      reinterpret_cast<uintptr_t>(p.grad_values) % 8 != 0) {
    return cudaErrorMisalignedAddress;
  }
  const unsigned blocks = static_cast<unsigned>(grid_blocks());
  switch (p.kind) {
    case ScalarKind::BFloat16: finish_kernel<__nv_bfloat16><<<blocks, kThreads, 0, stream>>>(p, scratch); break;
    case ScalarKind::Float16: finish_kernel<__half><<<blocks, kThreads, 0, stream>>>(p, scratch); break;
    case ScalarKind::Float32: return cudaErrorInvalidValue;  // float32 layers take the composed path
  }
  return cudaGetLastError();
}

}  // namespace pixelfly::kernels::cuda
