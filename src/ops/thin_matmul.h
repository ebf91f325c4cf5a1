// a (M, K) . b (K, N) for a narrow N (the rank of a low-rank factor). On the CPU, MKL computes
// such products several times faster as the transposed product (b^T a^T)^T: measured on this
// project's 2-core machine, (2048 x 512) . (512 x 5) took 1.0 ms directly and 0.32 ms transposed,
// (128 x 2048) . (2048 x 5) 1.4 ms and 0.07 ms. The result may be a transposed view.
#pragma once

#include <ATen/ATen.h>

namespace pixelfly::ops {

inline at::Tensor thin_matmul(const at::Tensor& a, const at::Tensor& b) {
  constexpr int64_t kNarrow = 32;
  if (a.device().is_cpu() && b.size(1) < kNarrow) return at::mm(b.t(), a.t()).t();
  return at::mm(a, b);
}

// a b, on the GPU with rows 32 bytes apart times a whole number (where N elements are not, a
// column slice of a wider buffer): the tensor-core kernels read the product's rows through TMA,
// and rows that straddle 32-byte sectors cost them extra sectors (Mixer-B fc1's forward 3.5 us
// more at 80-byte rows than at 64, docs/perf.md).
inline at::Tensor thin_matmul_sector_rows(const at::Tensor& a, const at::Tensor& b) {
  const int64_t sector_elements = 32 / static_cast<int64_t>(a.element_size()), n = b.size(1);
  if (a.device().is_cpu() || n % sector_elements == 0) return thin_matmul(a, b);
  const int64_t pitch = (n + sector_elements - 1) / sector_elements * sector_elements;
  at::Tensor out = at::empty({a.size(0), pitch}, a.options()).narrow(1, 0, n);
  at::mm_out(out, a, b);  // cuBLAS writes the strided columns in place
  return out;
}

}  // namespace pixelfly::ops
