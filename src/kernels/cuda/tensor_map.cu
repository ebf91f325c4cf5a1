// TMA tensor maps for row-major 16-bit matrices (see tensor_map.h), with a small per-thread
// cache of the last maps encoded: a training step encodes the same few maps every step (the same
// shapes, and the same addresses from the caching allocator), and the driver's encoder costs
// about 2 us of host time per call (docs/perf.md, version 5).
#include "kernels/cuda/tensor_map.h"

#include <cudaTypedefs.h>

#include <array>

namespace pixelfly::kernels::cuda {
namespace {

PFN_cuTensorMapEncodeTiled_v12000 tiled_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 encoder = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found) !=
            cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      return static_cast<PFN_cuTensorMapEncodeTiled_v12000>(nullptr);
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  return encoder;
}

CUtensorMapSwizzle swizzle_mode(int bytes) {
  switch (bytes) {
    case 32: return CU_TENSOR_MAP_SWIZZLE_32B;
    case 64: return CU_TENSOR_MAP_SWIZZLE_64B;
    case 128: return CU_TENSOR_MAP_SWIZZLE_128B;
    default: return CU_TENSOR_MAP_SWIZZLE_NONE;
  }
}

// Everything a map is encoded from: equal descriptions give equal maps.
struct Description {
  const void* base = nullptr;
  int64_t rows = 0, cols = 0, pitch = 0;
  int box_rows = 0, box_cols = 0, swizzle_bytes = 0;
  bool bfloat16 = false;
  bool operator==(const Description& o) const {
    return base == o.base && rows == o.rows && cols == o.cols && pitch == o.pitch && box_rows == o.box_rows &&
           box_cols == o.box_cols && swizzle_bytes == o.swizzle_bytes && bfloat16 == o.bfloat16;
  }
};

struct CachedMap {
  Description description;  // base null: an empty entry
  CUtensorMap map;
};

constexpr int kCachedMaps = 32;  // a layer step encodes about 15

cudaError_t encode_uncached(CUtensorMap* map, const Description& d) {
  const PFN_cuTensorMapEncodeTiled_v12000 encode = tiled_encoder();
  if (encode == nullptr) return cudaErrorNotSupported;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(d.cols), static_cast<cuuint64_t>(d.rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(d.pitch) * 2};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(d.box_cols), static_cast<cuuint32_t>(d.box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  const CUresult r = encode(map, d.bfloat16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2,
                            const_cast<void*>(d.base), dims, strides, box, element_strides,
                            CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle_mode(d.swizzle_bytes),
                            CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
}

}  // namespace

cudaError_t encode_tensor_map(CUtensorMap* map, const void* base, bool bfloat16, int64_t rows, int64_t cols,
                              int64_t pitch, int box_rows, int box_cols, int swizzle_bytes) {
  if (base == nullptr || rows <= 0 || cols <= 0) return cudaErrorInvalidValue;
  const Description d{base, rows, cols, pitch, box_rows, box_cols, swizzle_bytes, bfloat16};
  thread_local std::array<CachedMap, kCachedMaps> cache{};
  thread_local int next = 0;  // the entry replaced next (oldest first)
  for (const CachedMap& entry : cache) {
    if (entry.description == d) {
      *map = entry.map;
      return cudaSuccess;
    }
  }
  if (cudaError_t e = encode_uncached(map, d); e != cudaSuccess) return e;
  cache[next] = CachedMap{d, *map};
  next = (next + 1) % kCachedMaps;
  return cudaSuccess;
}

}  // namespace pixelfly::kernels::cuda
