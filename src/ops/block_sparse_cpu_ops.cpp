// CPU implementations of the block-sparse operators: validate, pack the blocks into tiles,
// run the BLAS-backed tile kernels. bfloat16 runs through float32 and is rounded once at the end.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "kernels/cpu/block_sparse_cpu.h"
#include "ops/input_checks.h"
#include "ops/shapes.h"
#include "pixelfly/ops/block_sparse_ops.h"

namespace pixelfly::ops {
namespace {

namespace cpu = kernels::cpu;

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
    cpu::forward<scalar_t>(shape, rows.size(0), rows.data_ptr<scalar_t>(),
                           packed.data_ptr<scalar_t>(), y.data_ptr<scalar_t>());
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
    cpu::grad_input<scalar_t>(shape, rows.size(0), rows.data_ptr<scalar_t>(),
                              packed.data_ptr<scalar_t>(), dx.data_ptr<scalar_t>());
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
  at::Tensor packed_grad = at::empty({cpu::packed_weight_elements(shape)}, x_rows.options());
  at::Tensor grad = at::empty({l.nnz(), l.block(), l.block()}, x_rows.options());
  AT_DISPATCH_FLOATING_TYPES(dtype, "block_sparse_linear_grad_weight_cpu", [&] {
    cpu::grad_weight<scalar_t>(shape, x_rows.size(0), dy_rows.data_ptr<scalar_t>(),
                               x_rows.data_ptr<scalar_t>(), packed_grad.data_ptr<scalar_t>());
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
