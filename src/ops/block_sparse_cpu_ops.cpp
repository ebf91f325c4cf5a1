// CPU implementations of the block-sparse operators: validate, pack the blocks into tiles,
// run the BLAS-backed tile kernels. bfloat16 runs through float32 and is rounded once at the end.
// Y and dX run over chunks of tokens small enough that a chunk of the activations stays in cache
// while every tile reads it, the chunks spread over LibTorch's threads; dW splits the tokens
// over the threads and sums their partial tile gradients.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "kernels/cpu/block_sparse_cpu.h"
#include "ops/input_checks.h"
#include "ops/shapes.h"
#include "pixelfly/ops/block_sparse_ops.h"

namespace pixelfly::ops {
namespace {

namespace cpu = kernels::cpu;

// Tokens per kernel call for Y and dX: about 256 Ki activation elements (x and y rows together,
// 1 MiB in float32, a typical L2), so that a chunk stays in cache while every tile reads it.
int64_t token_chunk(int64_t features) {
  return std::clamp<int64_t>((256 * 1024) / std::max<int64_t>(features, 1), 16, 1024);
}

// Calls kernel(first_token, tokens) over chunks of `chunk` tokens, in parallel.
template <typename Kernel>
void over_token_chunks(int64_t tokens, int64_t chunk, const Kernel& kernel) {
  const int64_t chunks = (tokens + chunk - 1) / chunk;
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) kernel(c * chunk, std::min(chunk, tokens - c * chunk));
  });
}

void check_cpu_dtype(const char* op, const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), op, ": ", name, " must be a CPU tensor here, got ", t.device());
  const auto dtype = t.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kBFloat16, op, ": ", name,
              " has dtype ", dtype, "; CPU supports float32, float64 and bfloat16");
}

at::ScalarType compute_dtype(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// (tokens, features) in the kernel's dtype.
at::Tensor rows_in(const at::Tensor& t, at::ScalarType dtype) { return as_rows(t).to(dtype).contiguous(); }

at::Tensor packed_weight(const cpu::BlockSparseShape& shape, const at::Tensor& values, at::ScalarType dtype) {
  at::Tensor v = values.to(dtype).contiguous();
  at::Tensor packed = at::empty({cpu::packed_weight_elements(shape)}, v.options());
  AT_DISPATCH_FLOATING_TYPES(dtype, "pack_tiles", [&] {
    cpu::pack_tiles<scalar_t>(shape, v.data_ptr<scalar_t>(), packed.data_ptr<scalar_t>());
  });
  return packed;
}

at::Tensor forward_cpu(const at::Tensor& x, const at::Tensor& values, const Layout& layout) {
  constexpr const char* op = "pixelfly::block_sparse_linear";
  const BlockLayout& l = check_forward_args(op, x, values, layout);
  check_cpu_dtype(op, x, "x");
  const auto dtype = compute_dtype(x);
  const at::Tensor rows = rows_in(x, dtype);
  check_int32_extent(op, "tokens", rows.size(0));
  const cpu::BlockSparseShape shape = cpu::make_shape(l);
  const at::Tensor packed = packed_weight(shape, values, dtype);
  at::Tensor y = at::empty({rows.size(0), l.out_features()}, rows.options());
  AT_DISPATCH_FLOATING_TYPES(dtype, "block_sparse_linear_cpu", [&] {
    const scalar_t* x_data = rows.data_ptr<scalar_t>();
    scalar_t* y_data = y.data_ptr<scalar_t>();
    over_token_chunks(rows.size(0), token_chunk(l.in_features() + l.out_features()), [&](int64_t first, int64_t n) {
      cpu::forward<scalar_t>(shape, n, x_data + first * l.in_features(), packed.data_ptr<scalar_t>(),
                             y_data + first * l.out_features());
    });
  });
  return y.to(x.scalar_type()).view(sizes_with_last(x, l.out_features()));
}

at::Tensor grad_input_cpu(const at::Tensor& grad_y, const at::Tensor& values, const Layout& layout) {
  constexpr const char* op = "pixelfly::block_sparse_linear_grad_input";
  const BlockLayout& l = check_grad_input_args(op, grad_y, values, layout);
  check_cpu_dtype(op, grad_y, "grad_y");
  const auto dtype = compute_dtype(grad_y);
  const at::Tensor rows = rows_in(grad_y, dtype);
  check_int32_extent(op, "tokens", rows.size(0));
  const cpu::BlockSparseShape shape = cpu::make_shape(l);
  const at::Tensor packed = packed_weight(shape, values, dtype);
  at::Tensor dx = at::empty({rows.size(0), l.in_features()}, rows.options());
  AT_DISPATCH_FLOATING_TYPES(dtype, "block_sparse_linear_grad_input_cpu", [&] {
    const scalar_t* dy_data = rows.data_ptr<scalar_t>();
    scalar_t* dx_data = dx.data_ptr<scalar_t>();
    over_token_chunks(rows.size(0), token_chunk(l.in_features() + l.out_features()), [&](int64_t first, int64_t n) {
      cpu::grad_input<scalar_t>(shape, n, dy_data + first * l.out_features(), packed.data_ptr<scalar_t>(),
                                dx_data + first * l.in_features());
    });
  });
  return dx.to(grad_y.scalar_type()).view(sizes_with_last(grad_y, l.in_features()));
}

at::Tensor grad_weight_cpu(const at::Tensor& grad_y, const at::Tensor& x, const Layout& layout) {
  constexpr const char* op = "pixelfly::block_sparse_linear_grad_weight";
  const BlockLayout& l = check_grad_weight_args(op, grad_y, x, layout);
  check_cpu_dtype(op, x, "x");
  const auto dtype = compute_dtype(x);
  const at::Tensor dy_rows = rows_in(grad_y, dtype);
  const at::Tensor x_rows = rows_in(x, dtype);
  check_int32_extent(op, "tokens", x_rows.size(0));
  const cpu::BlockSparseShape shape = cpu::make_shape(l);
  const int64_t tokens = x_rows.size(0), elements = cpu::packed_weight_elements(shape);
  // One partial gradient per slice of at least 1024 tokens, at most one slice per thread.
  const int64_t slices = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), tokens / 1024));
  const int64_t slice = (tokens + slices - 1) / slices;
  at::Tensor partial = at::empty({slices, elements}, x_rows.options());
  at::Tensor grad = at::empty({l.nnz(), l.block(), l.block()}, x_rows.options());
  AT_DISPATCH_FLOATING_TYPES(dtype, "block_sparse_linear_grad_weight_cpu", [&] {
    at::parallel_for(0, slices, 1, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const int64_t first = p * slice, n = std::max<int64_t>(0, std::min(slice, tokens - first));
        cpu::grad_weight<scalar_t>(shape, n, dy_rows.data_ptr<scalar_t>() + first * l.out_features(),
                                   x_rows.data_ptr<scalar_t>() + first * l.in_features(),
                                   partial.data_ptr<scalar_t>() + p * elements);
      }
    });
    const at::Tensor packed_grad = slices == 1 ? partial[0] : partial.sum(0);
    cpu::unpack_tiles<scalar_t>(shape, packed_grad.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>());
  });
  return grad.to(x.scalar_type());
}

}  // namespace
}  // namespace pixelfly::ops

TORCH_LIBRARY_IMPL(pixelfly, CPU, m) {
  m.impl("block_sparse_linear", &pixelfly::ops::forward_cpu);
  m.impl("block_sparse_linear_grad_input", &pixelfly::ops::grad_input_cpu);
  m.impl("block_sparse_linear_grad_weight", &pixelfly::ops::grad_weight_cpu);
}
