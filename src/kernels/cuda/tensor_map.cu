// TMA tensor maps for row-major 16-bit and float32 matrices (see tensor_map.h).
#include "kernels/cuda/tensor_map.h"

#include <cudaTypedefs.h>

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

// A rows x cols matrix of `element_bytes`-byte elements of `type` (see encode_tensor_map).
cudaError_t encode_2d(CUtensorMap* map, CUtensorMapDataType type, int element_bytes, const void* base, int64_t rows,
                      int64_t cols, int64_t pitch, int box_rows, int box_cols, int swizzle_bytes) {
  const PFN_cuTensorMapEncodeTiled_v12000 encode = tiled_encoder();
  if (encode == nullptr) return cudaErrorNotSupported;
  if (rows <= 0 || cols <= 0) return cudaErrorInvalidValue;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(pitch) * element_bytes};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(box_cols), static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  const CUresult r = encode(map, type, 2, const_cast<void*>(base), dims, strides, box, element_strides,
                            CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle_mode(swizzle_bytes),
                            CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
}

}  // namespace

cudaError_t encode_tensor_map(CUtensorMap* map, const void* base, bool bfloat16, int64_t rows, int64_t cols,
                              int64_t pitch, int box_rows, int box_cols, int swizzle_bytes) {
  return encode_2d(map, bfloat16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2, base, rows,
                   cols, pitch, box_rows, box_cols, swizzle_bytes);
}

cudaError_t encode_float32_tensor_map(CUtensorMap* map, const float* base, int64_t rows, int64_t cols, int64_t pitch,
                                      int box_rows, int box_cols, int swizzle_bytes) {
  return encode_2d(map, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4, base, rows, cols, pitch, box_rows, box_cols,
                   swizzle_bytes);
}

}  // namespace pixelfly::kernels::cuda
