// CUDA implementations of the block-sparse operators: validate, take the layout's cached device
// index, launch the kernels on the current stream. float32, float16 and bfloat16.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/util/Optional.h>
#include <torch/library.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cuda/block_sparse_cuda.h"
#include "kernels/cuda/launch_shape.h"
#include "kernels/cuda/low_rank_gradients.h"
#include "kernels/cuda/parameter_gradients.h"
#include "ops/input_checks.h"
#include "ops/shapes.h"
#include "pixelfly/pattern/tile_schedule.h"
#include "pixelfly/ops/block_sparse_ops.h"
#include "pixelfly/ops/pixelfly_linear_ops.h"

namespace pixelfly::ops {
namespace {

namespace cuda = kernels::cuda;

cuda::ScalarKind scalar_kind(const char* op, const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), op, ": ", name, " must be a CUDA tensor here, got ", t.device());
  switch (t.scalar_type()) {
    case at::kFloat: return cuda::ScalarKind::Float32;
    case at::kHalf: return cuda::ScalarKind::Float16;
    case at::kBFloat16: return cuda::ScalarKind::BFloat16;
    default:
      TORCH_CHECK(false, op, ": ", name, " has dtype ", t.scalar_type(),
                  "; CUDA supports float32, float16 and bfloat16");
  }
}

// The layout's device index as the kernels take it, with the line groupings of a call whose
// low-rank term has `rank` (0 for the plain operators; tile_schedule.h, line_grouping).
cuda::DeviceLayout device_layout(const char* op, const Layout& layout, const at::Device& device, int64_t rank) {
  const BlockLayout& l = layout->layout();
  TORCH_CHECK(cuda::supports_block(l.block()), op, ": block ", l.block(),
              " is not supported on CUDA; use 16, 32, 64 or 128");
  const DeviceIndex& index = layout->device_index(device);
  cuda::DeviceLayout d;
  d.out_features = l.out_features();
  d.in_features = l.in_features();
  d.block = l.block();
  d.block_rows = l.block_rows();
  d.block_cols = l.block_cols();
  d.nnz = l.nnz();
  d.row_ptr = index.row_ptr.data_ptr<int64_t>();
  d.col_idx = index.col_idx.data_ptr<int64_t>();
  d.col_ptr = index.col_ptr.data_ptr<int64_t>();
  d.row_idx = index.row_idx.data_ptr<int64_t>();
  d.transpose_block = index.transpose_block.data_ptr<int64_t>();
  d.block_row = index.block_row.data_ptr<int64_t>();
  if (index.gradient_pieces.defined()) {
    const TileSchedule& schedule = layout->tile_schedule();
    const DeviceIndex::Grouping& rows = index.line_grouping(schedule, false, rank);
    const DeviceIndex::Grouping& cols = index.line_grouping(schedule, true, rank);
    d.row_groups = rows.groups.data_ptr<int64_t>();
    d.num_row_groups = rows.groups.size(0);
    d.row_index = rows.index.data_ptr<int64_t>();
    d.row_blocks = rows.blocks.data_ptr<int64_t>();
    d.row_tile_features = rows.tile_features;
    d.col_groups = cols.groups.data_ptr<int64_t>();
    d.num_col_groups = cols.groups.size(0);
    d.col_index = cols.index.data_ptr<int64_t>();
    d.col_blocks = cols.blocks.data_ptr<int64_t>();
    d.col_tile_features = cols.tile_features;
    d.gradient_pieces = index.gradient_pieces.data_ptr<int64_t>();
    d.num_gradient_pieces = index.gradient_pieces.size(0);
    d.gradient_piece_features = schedule.gradient_piece_features;
    d.gradient_columns = index.gradient_columns.data_ptr<int64_t>();
    d.gradient_blocks = index.gradient_blocks.data_ptr<int64_t>();
    d.gradient_fold_sets = index.gradient_fold_sets.data_ptr<int64_t>();
    d.gradient_fold_products = schedule.gradient_fold_products;
    d.gradient_column_owner = index.gradient_column_owner.data_ptr<int64_t>();
    d.gradient_columns_cover_inputs = schedule.gradient_columns_cover_inputs;
    d.gradient_pieces_cover_rows_once = schedule.gradient_pieces_cover_rows_once;
    d.gradient_columns_in_runs_of_64 = schedule.gradient_columns_in_runs_of_64;
  }
  return d;
}

// The tensor-core kernels copy through TMA, which needs 16-byte-aligned base addresses: a
// contiguous view at an odd storage offset is copied to fresh memory.
at::Tensor aligned(const at::Tensor& t) {
  return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0 ? t : t.clone();
}
at::Tensor device_rows(const at::Tensor& t) { return aligned(as_rows(t)); }
at::Tensor device_contiguous(const at::Tensor& t) { return aligned(t.contiguous()); }
// (..., r) as rows that TMA reads in place where it can: unit column stride and a row pitch of
// whole 16-byte units (a column slice of a wider buffer qualifies); otherwise a contiguous copy.
at::Tensor device_pitched_rows(const at::Tensor& t) {
  const at::Tensor rows = row_view(t);
  const bool pitched = rows.stride(1) == 1 && rows.stride(0) >= rows.size(1) && rows.stride(0) % 8 == 0;
  return pitched ? aligned(rows) : device_rows(t);
}

// The union lengths of the groups the forward (grad_input: transposed) kernel runs for `rank`.
std::vector<int64_t> union_lengths(const Layout& layout, bool transposed, int64_t rank) {
  std::vector<int64_t> lengths;
  for (const LineGroup& g : line_grouping(layout->tile_schedule(), transposed, rank).groups) lengths.push_back(g.length);
  return lengths;
}

// Whether the fused kernels take the low-rank term of `rank` beside their ring of stages for
// this layout and direction (cuda::Epilogue::low_rank_beside, cuda::low_rank_beside_pays).
bool low_rank_beside(const Layout& layout, bool transposed, int64_t rank) {
  return cuda::low_rank_beside_pays(union_lengths(layout, transposed, rank), layout->block(), rank);
}

// The tensor-core forward (grad_input: transposed) kernel's tile order for `tokens` tokens and
// low-rank `rank`, its ring carrying the low-rank chunks unless `beside` (cuda::line_tile_order),
// built once per layout, device, direction, token count and rank and kept with the layout (4
// bytes a tile); a captured CUDA graph uses the order built by an eager call before it. Null
// where the tensor-core kernels do not run, and when first needed while the stream is being
// captured, where the host-to-device copy cannot run: the kernel then deals its tiles
// round-robin.
const int32_t* tile_order(const Layout& layout, const cuda::DeviceLayout& d, cuda::ScalarKind kind, bool transposed,
                          int64_t tokens, int64_t rank, bool beside, const at::Device& device) {
  if (!cuda::supports_epilogue(d, kind, rank) || tokens == 0) return nullptr;
  const std::string key = device.str() + (transposed ? "/grad_input" : "/forward") + "-order/tokens " +
                          std::to_string(tokens) + "/rank " + std::to_string(rank);
  const at::Tensor order = layout->cached_tensor(key, [&] {
    if (c10::cuda::currentStreamCaptureStatusMayInitCtx() != c10::cuda::CaptureStatus::None) {
      return at::Tensor();  // not kept: the next call outside a capture builds it
    }
    const std::vector<int64_t> lengths = union_lengths(layout, transposed, rank);
    return at::tensor(cuda::line_tile_order(lengths, d.block, beside ? 0 : rank, tokens), at::kInt).to(device);
  });
  return order.defined() ? order.data_ptr<int32_t>() : nullptr;
}

void check_launch(const char* op, cudaError_t status) {
  TORCH_CHECK(status == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(status));
}

at::Tensor forward_cuda(const at::Tensor& x, const at::Tensor& values, const Layout& layout) {
  constexpr const char* op = "pixelfly::block_sparse_linear";
  const BlockLayout& l = check_forward_args(op, x, values, layout);
  const auto kind = scalar_kind(op, x, "x");
  const c10::cuda::CUDAGuard guard(x.device());
  const cuda::DeviceLayout d = device_layout(op, layout, x.device(), 0);
  const at::Tensor rows = device_rows(x);
  const at::Tensor v = device_contiguous(values);
  at::Tensor y = at::empty({rows.size(0), l.out_features()}, rows.options());
  check_launch(op, cuda::forward(d, kind, rows.size(0), rows.data_ptr(), v.data_ptr(), y.data_ptr(),
                                 tile_order(layout, d, kind, false, rows.size(0), 0, false, x.device()),
                                 at::cuda::getCurrentCUDAStream()));
  return y.view(sizes_with_last(x, l.out_features()));
}

at::Tensor grad_input_cuda(const at::Tensor& grad_y, const at::Tensor& values, const Layout& layout) {
  constexpr const char* op = "pixelfly::block_sparse_linear_grad_input";
  const BlockLayout& l = check_grad_input_args(op, grad_y, values, layout);
  const auto kind = scalar_kind(op, grad_y, "grad_y");
  const c10::cuda::CUDAGuard guard(grad_y.device());
  const cuda::DeviceLayout d = device_layout(op, layout, grad_y.device(), 0);
  const at::Tensor rows = device_rows(grad_y);
  const at::Tensor v = device_contiguous(values);
  at::Tensor dx = at::empty({rows.size(0), l.in_features()}, rows.options());
  check_launch(op, cuda::grad_input(d, kind, rows.size(0), rows.data_ptr(), v.data_ptr(), dx.data_ptr(),
                                    tile_order(layout, d, kind, true, rows.size(0), 0, false, grad_y.device()),
                                    at::cuda::getCurrentCUDAStream()));
  return dx.view(sizes_with_last(grad_y, l.in_features()));
}

at::Tensor grad_weight_cuda(const at::Tensor& grad_y, const at::Tensor& x, const Layout& layout) {
  constexpr const char* op = "pixelfly::block_sparse_linear_grad_weight";
  const BlockLayout& l = check_grad_weight_args(op, grad_y, x, layout);
  const auto kind = scalar_kind(op, x, "x");
  const c10::cuda::CUDAGuard guard(x.device());
  const cuda::DeviceLayout d = device_layout(op, layout, x.device(), 0);
  const at::Tensor dy_rows = device_rows(grad_y), x_rows = device_rows(x);
  at::Tensor grad = at::empty({l.nnz(), l.block(), l.block()}, x_rows.options());
  const int64_t workspace_elements = cuda::grad_weight_workspace_elements(d, kind);
  at::Tensor workspace;
  if (workspace_elements > 0) workspace = at::empty({workspace_elements}, x_rows.options().dtype(at::kFloat));
  check_launch(op, cuda::grad_weight(d, kind, x_rows.size(0), dy_rows.data_ptr(), x_rows.data_ptr(), grad.data_ptr(),
                                     workspace.defined() ? workspace.data_ptr<float>() : nullptr,
                                     at::cuda::getCurrentCUDAStream()));
  return grad;
}

// True when these arguments suit the fused kernel (the device is checked by
// cuda::supports_epilogue); otherwise the composed path runs.
bool fusable(const BlockLayout& l, const at::Tensor& act, const at::Tensor& values, const at::Tensor& low_rank_a) {
  const auto dtype = act.scalar_type();
  return act.is_cuda() && (dtype == at::kHalf || dtype == at::kBFloat16) && values.scalar_type() == dtype &&
         low_rank_a.scalar_type() == dtype && cuda::supports_block(l.block()) &&
         kKernelTileFeatures % l.block() == 0 && l.out_features() % 8 == 0 && l.in_features() % 8 == 0;
}

// The fused kernels read the low-rank factors through TMA, whose rows must be whole 16-byte
// units: a rank that is not a multiple of 8 gets zero columns (in `dim` of t), which add
// nothing to the product.
int64_t kernel_rank(int64_t rank) { return (rank + 7) / 8 * 8; }
at::Tensor pad_rank(const at::Tensor& t, int64_t dim) {
  const int64_t missing = kernel_rank(t.size(dim)) - t.size(dim);
  if (missing == 0) return t;
  return dim == t.dim() - 1 ? at::constant_pad_nd(t, {0, missing}) : at::constant_pad_nd(t, {0, 0, 0, missing});
}

// The fused kernels' mix: g (or its logit) read on the device in its own dtype (no conversion
// launched), and the low-rank factor a (tokens, r) in place when its rows are pitched for TMA.
cuda::Epilogue mixed_epilogue(const char* op, const at::Tensor& scale, bool scale_is_logit,
                              const at::Tensor& low_rank_a, const at::Tensor& low_rank_b) {
  cuda::Epilogue epilogue;
  epilogue.mix = scale.data_ptr();
  epilogue.mix_kind = scalar_kind(op, scale, "scale");
  epilogue.mix_logit = scale_is_logit;
  epilogue.low_rank_a = low_rank_a.data_ptr();
  epilogue.low_rank_a_pitch = low_rank_a.stride(0);
  epilogue.low_rank_b = low_rank_b.data_ptr();
  epilogue.rank = low_rank_a.size(1);
  return epilogue;
}
// A float64 scale (on a float16/bfloat16 call) goes to the kernel as float32.
at::Tensor kernel_scale(const at::Tensor& scale) {
  return scale.scalar_type() == at::kDouble ? scale.to(at::kFloat) : scale;
}
// a (..., r) for the kernel: pitched rows, or a copy with r padded to a multiple of 8 (its
// partner b is padded alike).
at::Tensor kernel_low_rank_a(const at::Tensor& a) {
  return a.size(-1) % 8 == 0 ? device_pitched_rows(a) : device_contiguous(pad_rank(as_rows(a), 1));
}

at::Tensor mixed_linear_cuda(const at::Tensor& x, const at::Tensor& values, const Layout& layout, const at::Tensor& scale,
                             const at::Tensor& low_rank_a, const at::Tensor& low_rank_b,
                             const c10::optional<at::Tensor>& bias, bool scale_is_logit) {
  constexpr const char* op = "pixelfly::mixed_linear";
  const BlockLayout& l = check_forward_args(op, x, values, layout);
  check_mixed_arguments(op, x, scale, low_rank_a, low_rank_b, l.out_features(), 0, 1, bias, l.out_features());
  auto composed = [&] {
    return mixed_linear_composed(x, values, layout, scale, low_rank_a, low_rank_b, bias, scale_is_logit);
  };
  if (!fusable(l, x, values, low_rank_a)) return composed();
  const auto kind = scalar_kind(op, x, "x");
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t rank = kernel_rank(low_rank_a.size(-1));
  const cuda::DeviceLayout d = device_layout(op, layout, x.device(), rank);
  if (!cuda::supports_epilogue(d, kind, rank)) return composed();  // not a Hopper device or build
  const at::Tensor rows = device_rows(x), a = kernel_low_rank_a(low_rank_a);
  const at::Tensor b = device_contiguous(pad_rank(low_rank_b, 1)), v = device_contiguous(values);
  const at::Tensor s = kernel_scale(scale);
  at::Tensor bias_c;
  if (bias.has_value() && bias->defined()) bias_c = bias->contiguous();
  if (bias_c.defined() && reinterpret_cast<uintptr_t>(bias_c.data_ptr()) % 16 != 0) {
    bias_c = bias_c.clone();  // the kernel copies it in 16-byte pieces
  }
  cuda::Epilogue epilogue = mixed_epilogue(op, s, scale_is_logit, a, b);
  epilogue.bias = bias_c.defined() ? bias_c.data_ptr() : nullptr;
  epilogue.low_rank_beside = low_rank_beside(layout, false, rank);
  at::Tensor y = at::empty({rows.size(0), l.out_features()}, rows.options());
  check_launch(op, cuda::forward_fused(
                       d, kind, rows.size(0), rows.data_ptr(), v.data_ptr(), epilogue, y.data_ptr(),
                       tile_order(layout, d, kind, false, rows.size(0), rank, epilogue.low_rank_beside, x.device()),
                       at::cuda::getCurrentCUDAStream()));
  return y.view(sizes_with_last(x, l.out_features()));
}

at::Tensor mixed_linear_grad_input_cuda(const at::Tensor& grad_y, const at::Tensor& values, const Layout& layout,
                                        const at::Tensor& scale, const at::Tensor& low_rank_a,
                                        const at::Tensor& low_rank_b_t, bool scale_is_logit) {
  constexpr const char* op = "pixelfly::mixed_linear_grad_input";
  const BlockLayout& l = check_grad_input_args(op, grad_y, values, layout);
  check_mixed_arguments(op, grad_y, scale, low_rank_a, low_rank_b_t, 0, l.in_features(), 0, c10::nullopt, 0);
  auto composed = [&] {
    return mixed_linear_grad_input_composed(grad_y, values, layout, scale, low_rank_a, low_rank_b_t, scale_is_logit);
  };
  if (!fusable(l, grad_y, values, low_rank_a)) return composed();
  const auto kind = scalar_kind(op, grad_y, "grad_y");
  const c10::cuda::CUDAGuard guard(grad_y.device());
  const int64_t rank = kernel_rank(low_rank_a.size(-1));
  const cuda::DeviceLayout d = device_layout(op, layout, grad_y.device(), rank);
  if (!cuda::supports_epilogue(d, kind, rank)) return composed();  // not a Hopper device or build
  const at::Tensor rows = device_rows(grad_y), a = kernel_low_rank_a(low_rank_a);
  // b as (rank, in) rows for the ring; beside it as (in, rank) rows, read in place when
  // low_rank_b_t is the transposed view of such a matrix (PixelflyLinear's v).
  const bool beside = low_rank_beside(layout, true, rank);
  const at::Tensor b = beside ? device_contiguous(pad_rank(low_rank_b_t.t(), 1))
                              : device_contiguous(pad_rank(low_rank_b_t, 0));
  const at::Tensor v = device_contiguous(values), s = kernel_scale(scale);
  cuda::Epilogue epilogue = mixed_epilogue(op, s, scale_is_logit, a, b);
  epilogue.low_rank_beside = beside;
  at::Tensor dx = at::empty({rows.size(0), l.in_features()}, rows.options());
  check_launch(op, cuda::grad_input_fused(
                       d, kind, rows.size(0), rows.data_ptr(), v.data_ptr(), epilogue, dx.data_ptr(),
                       tile_order(layout, d, kind, true, rows.size(0), rank, epilogue.low_rank_beside,
                                  grad_y.device()),
                       at::cuda::getCurrentCUDAStream()));
  return dx.view(sizes_with_last(grad_y, l.in_features()));
}

// dy u and dy^T [projected | 1] in one pass over dy (low_rank_gradients.h) where the kernel runs
// these shapes (projected as wide as u; the ones made in the kernel's registers, eight columns of
// which the result keeps one); otherwise cuBLAS products.
std::tuple<at::Tensor, at::Tensor> low_rank_grad_products_cuda(const at::Tensor& grad_y, const at::Tensor& u,
                                                               const at::Tensor& projected, bool ones_column) {
  constexpr const char* op = "pixelfly::low_rank_grad_products";
  check_low_rank_grad_product_args(op, grad_y, u, projected);
  const auto kind = scalar_kind(op, grad_y, "grad_y");
  const int64_t out = grad_y.size(-1), rank = u.size(1), width = rank + (ones_column ? 8 : 0);
  const c10::cuda::CUDAGuard guard(grad_y.device());
  if (row_view(grad_y).size(0) == 0 || projected.size(-1) != rank ||
      !cuda::supports_low_rank_gradients(kind, out, rank, width)) {
    return low_rank_grad_products_composed(grad_y, u, projected, ones_column);
  }
  const at::Tensor dy = device_rows(grad_y), u_c = device_contiguous(u), p_rows = device_pitched_rows(projected);
  const int64_t tokens = dy.size(0);
  check_int32_extent(op, "tokens", tokens);
  const int64_t scratch_elements = cuda::low_rank_gradients_scratch_elements(tokens, out, rank, width);
  // product and the kernel's scratch in one buffer, zeroed by one memset.
  at::Tensor buffer = at::empty({out * width + scratch_elements}, grad_y.options().dtype(at::kFloat));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  check_launch(op, cudaMemsetAsync(buffer.data_ptr(), 0, buffer.nbytes(), stream));
  at::Tensor grad_projected = at::empty({tokens, rank}, dy.options());
  cuda::LowRankGradients p;
  p.kind = kind;
  p.tokens = tokens;
  p.out_features = out;
  p.rank = rank;
  p.width = width;
  p.projected_pitch = p_rows.stride(0);
  p.grad_y = dy.data_ptr();
  p.u = u_c.data_ptr();
  p.projected = p_rows.data_ptr();
  p.grad_projected = grad_projected.data_ptr();
  p.product = buffer.data_ptr<float>();
  check_launch(op, cuda::low_rank_gradients(p, p.product + out * width, stream));
  const at::Tensor product = buffer.narrow(0, 0, out * width).view({out, width});
  return {grad_projected.view(sizes_with_last(grad_y, rank)), product.narrow(1, 0, rank + (ones_column ? 1 : 0))};
}

using ParameterGradients = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// v's gradient product x^T (dy u) where no kernel folds it (in x r, float32). With the tokens as
// its long K and few results, cuBLAS splits K itself and adds the splits in a reduction kernel of
// its own, one more launch at the end of the step (2 us at the paper's fc1 shapes). So where the
// tokens divide into 8 (cuda::kMaxVPartials), 4 or 2 ranges of at least 256, it is one
// strided-batched product over the ranges (no split of its own, docs/perf.md version 45): partial
// sums one after another, which the finishing pass adds (ParameterGradients::v_partials).
constexpr int64_t kMinTokensPerVRange = 256;
struct VPartialSums {
  at::Tensor sums;
  int64_t count = 1;
};
VPartialSums v_partial_sums(const at::Tensor& x_rows, const at::Tensor& dy_u) {
  const int64_t tokens = x_rows.size(0);
  for (int64_t count = cuda::kMaxVPartials; count >= 2; count /= 2) {
    if (tokens % count != 0 || tokens / count < kMinTokensPerVRange) continue;
    const at::Tensor x_ranges = x_rows.view({count, tokens / count, x_rows.size(1)}).transpose(1, 2);
    const at::Tensor a_ranges = dy_u.view({count, tokens / count, dy_u.size(1)});
    return {at::bmm(x_ranges, a_ranges, at::kFloat), count};
  }
  return {at::mm(x_rows.t(), dy_u, at::kFloat), 1};
}

// The finishing pass after the weight-gradient kernel (parameter_gradients.h): from the blocks'
// float32 sums (`sums` of them at weight_sums), v's float32 sums x^T (dy u) (`v_partials` partial
// sums of in x r, one after another), and the low-rank product dy^T [x v | 1] (float32 rows
// `product_pitch` apart), every parameter gradient with its mix weight (gamma, or sigmoid(gamma)
// with gamma_is_logit), in one kernel; `finish_scratch` is the pass's zeroed scratch.
ParameterGradients finish_parameter_gradients(const char* op, cuda::ScalarKind kind, float* weight_sums, int64_t sums,
                                              const float* v_sums, int64_t v_partials, float* finish_scratch,
                                              const at::Tensor& values, const Layout& layout, const at::Tensor& u,
                                              const at::Tensor& gamma, bool gamma_is_logit, const float* product,
                                              int64_t product_pitch, bool bias, cudaStream_t stream) {
  at::Tensor values_c = values.contiguous();
  if (reinterpret_cast<uintptr_t>(values_c.data_ptr()) % 8 != 0) values_c = values_c.clone();  // read four at a time
  const at::Tensor u_c = u.contiguous();
  at::Tensor grad_values = at::empty_like(values_c), grad_u = at::empty_like(u_c);
  at::Tensor grad_v = at::empty({layout->in_features(), u.size(1)}, u.options());
  at::Tensor grad_gamma = at::empty({}, gamma.options()), grad_bias;
  if (bias) grad_bias = at::empty({layout->out_features()}, u.options());
  cuda::ParameterGradients p;
  p.kind = kind;
  p.mix = gamma.data_ptr();
  p.mix_kind = scalar_kind(op, gamma, "gamma");
  p.mix_logit = gamma_is_logit;
  p.weight_elements = sums;
  p.weight_sums = weight_sums;
  p.values = values_c.data_ptr();
  p.grad_values = grad_values.data_ptr();
  p.out_features = layout->out_features();
  p.rank = u.size(1);
  p.product = product;
  p.product_pitch = product_pitch;
  p.u = u_c.data_ptr();
  p.grad_u = grad_u.data_ptr();
  p.grad_bias = bias ? grad_bias.data_ptr() : nullptr;
  p.v_elements = grad_v.numel();
  p.v_sums = v_sums;
  p.v_partials = v_partials;
  p.grad_v = grad_v.data_ptr();
  p.grad_mix = grad_gamma.data_ptr();
  check_launch(op, cuda::finish_parameter_gradients(p, finish_scratch, stream));
  return {grad_values, grad_u, grad_v, grad_gamma, grad_bias};
}

// One pass over the blocks' float32 sums, the low-rank products and the bias after the
// weight-gradient kernel (finish_parameter_gradients): the mix's products, its gradient and the
// dtype conversions launch nothing else. v's gradient x^T (dy u) rides in the weight-gradient
// kernel's pass over x where it can (cuda::can_fold_into_grad_weight: the token splits add into
// float32 sums, a rank up to 32), else thin cuBLAS products with float32 results
// (v_partial_sums). With grad_weight_sums (from grad_weight_and_low_rank_products) there is no
// weight-gradient kernel here: the cuBLAS product and the finishing pass.
ParameterGradients pixelfly_linear_grad_params_cuda(const at::Tensor& grad_y, const at::Tensor& x,
                                                    const at::Tensor& values, const Layout& layout, const at::Tensor& u,
                                                    const at::Tensor& gamma, const at::Tensor& product,
                                                    const at::Tensor& grad_projected, bool bias,
                                                    const c10::optional<at::Tensor>& grad_weight_sums,
                                                    bool gamma_is_logit) {
  constexpr const char* op = "pixelfly::pixelfly_linear_grad_params";
  const int64_t r = check_parameter_gradient_args(op, grad_y, x, values, layout, u, gamma, product, grad_projected, bias,
                                                  grad_weight_sums);
  auto composed = [&] {
    return pixelfly_linear_grad_params_composed(grad_y, x, values, layout, u, gamma, product, grad_projected, bias,
                                                grad_weight_sums, gamma_is_logit);
  };
  const auto dtype = x.scalar_type();
  const bool sixteen_bit = dtype == at::kHalf || dtype == at::kBFloat16;
  if (!sixteen_bit || gamma.scalar_type() == at::kDouble || !cuda::supports_block(layout->block())) return composed();
  const auto kind = scalar_kind(op, x, "x");
  const c10::cuda::CUDAGuard guard(x.device());
  const cuda::DeviceLayout d = device_layout(op, layout, x.device(), 0);
  const int64_t sums = cuda::grad_weight_workspace_elements(d, kind);
  if (sums == 0) return composed();  // no tensor-core path: not Hopper, or an empty layout
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor dy_rows = device_rows(grad_y), x_rows = device_rows(x);
  const int64_t tokens = x_rows.size(0), in = layout->in_features();
  const at::Tensor dy_u = device_pitched_rows(grad_projected);
  // product may be a column slice of a wider buffer (low_rank_grad_products' ones columns).
  const bool product_rows = product.stride(1) == 1 && product.stride(0) >= product.size(1);
  const at::Tensor product_c = product_rows ? product : product.contiguous();
  if (grad_weight_sums.has_value() && grad_weight_sums->defined()) {
    const at::Tensor weight_sums = device_contiguous(*grad_weight_sums);
    at::Tensor scratch = at::zeros({cuda::parameter_gradients_scratch_elements()}, x.options().dtype(at::kFloat));
    const VPartialSums v_product = v_partial_sums(x_rows, dy_u);
    return finish_parameter_gradients(op, kind, weight_sums.data_ptr<float>(), sums, v_product.sums.data_ptr<float>(),
                                      v_product.count, scratch.data_ptr<float>(), values, layout, u, gamma,
                                      gamma_is_logit, product_c.data_ptr<float>(), product_c.stride(0), bias, stream);
  }
  const bool fold = cuda::can_fold_into_grad_weight(d, kind, tokens, r);
  // The blocks' sums, then v's (with the fold; float32, in x r), then the finishing pass's scratch:
  // one buffer, one memset.
  const int64_t v_sums = fold ? in * r : 0;
  at::Tensor scratch =
      at::empty({sums + v_sums + cuda::parameter_gradients_scratch_elements()}, x.options().dtype(at::kFloat));
  check_launch(op, cudaMemsetAsync(scratch.data_ptr(), 0, scratch.nbytes(), stream));
  cuda::GradientFold folded;
  if (fold) {
    folded.a = dy_u.data_ptr();
    folded.a_pitch = dy_u.stride(0);
    folded.rank = r;
    folded.v_sums = scratch.data_ptr<float>() + sums;
  }
  check_launch(op, cuda::accumulate_grad_weight(d, kind, tokens, dy_rows.data_ptr(), x_rows.data_ptr(),
                                                scratch.data_ptr<float>(), fold ? &folded : nullptr, nullptr, stream));
  const VPartialSums v_product = fold ? VPartialSums{} : v_partial_sums(x_rows, dy_u);
  return finish_parameter_gradients(op, kind, scratch.data_ptr<float>(), sums,
                                    fold ? folded.v_sums : v_product.sums.data_ptr<float>(), v_product.count,
                                    scratch.data_ptr<float>() + sums + v_sums, values, layout, u, gamma, gamma_is_logit,
                                    product_c.data_ptr<float>(), product_c.stride(0), bias, stream);
}

// grad_weight_and_low_rank_products where the weight-gradient kernel does not take the low-rank
// products: low_rank_grad_products, and the blocks' float32 sums from the weight-gradient kernel
// into a zeroed buffer (as pixelfly_linear_grad_params computes them); composed where that kernel
// does not run (not 16-bit, not Hopper, an empty layout: float32 copies of the 16-bit inputs and
// the CUDA-core kernel, a slow path that pixelfly_linear's backward, which calls this operator
// only where it is one pass, never takes).
std::tuple<at::Tensor, at::Tensor, at::Tensor> grad_weight_and_low_rank_products_apart(
    const char* op, const at::Tensor& grad_y, const at::Tensor& x, const Layout& layout, const at::Tensor& u,
    const at::Tensor& projected, bool ones_column) {
  auto composed = [&] { return grad_weight_and_low_rank_products_composed(grad_y, x, layout, u, projected, ones_column); };
  const auto dtype = x.scalar_type();
  if ((dtype != at::kHalf && dtype != at::kBFloat16) || !cuda::supports_block(layout->block())) return composed();
  const auto kind = scalar_kind(op, x, "x");
  const c10::cuda::CUDAGuard guard(x.device());
  const cuda::DeviceLayout d = device_layout(op, layout, x.device(), 0);
  const int64_t sums = cuda::grad_weight_workspace_elements(d, kind);
  if (sums == 0) return composed();
  const at::Tensor dy_rows = device_rows(grad_y), x_rows = device_rows(x);
  check_int32_extent(op, "tokens", x_rows.size(0));
  const auto [grad_projected, product] = low_rank_grad_products(grad_y, u, projected, ones_column);
  at::Tensor weight_sums = at::zeros({sums}, x.options().dtype(at::kFloat));
  check_launch(op, cuda::accumulate_grad_weight(d, kind, x_rows.size(0), dy_rows.data_ptr(), x_rows.data_ptr(),
                                                weight_sums.data_ptr<float>(), nullptr, nullptr,
                                                at::cuda::getCurrentCUDAStream()));
  return {grad_projected, product, weight_sums.view({layout->nnz(), layout->block(), layout->block()})};
}

// Whether the weight-gradient kernel computes both low-rank products of the layer's backward
// (dy u and dy^T [x v | 1]) from its stages of dy (cuda::can_take_low_rank_into_grad_weight); the
// layout on the device when it does.
c10::optional<cuda::DeviceLayout> one_pass_layout(const char* op, const at::Tensor& x, const Layout& layout,
                                                  int64_t rank) {
  const auto dtype = x.scalar_type();
  if ((dtype != at::kHalf && dtype != at::kBFloat16) || !cuda::supports_block(layout->block()) || x.dim() < 1 ||
      x.size(-1) != layout->in_features()) {
    return c10::nullopt;
  }
  const c10::cuda::CUDAGuard guard(x.device());
  const cuda::DeviceLayout d = device_layout(op, layout, x.device(), 0);
  if (!cuda::can_take_low_rank_into_grad_weight(d, scalar_kind(op, x, "x"), x.numel() / x.size(-1), rank)) {
    return c10::nullopt;
  }
  return d;
}

bool grad_weight_and_low_rank_products_is_one_pass_cuda(const at::Tensor& x, const Layout& layout, int64_t rank) {
  return one_pass_layout("pixelfly::grad_weight_and_low_rank_products_is_one_pass", x, layout, rank).has_value();
}

// dy u, dy^T [x v | 1] and dy^T x on the blocks. Where the weight-gradient kernel takes the
// low-rank products: one memset, that kernel (dy u into float32 sums, tokens x 32) and one
// rounding pass for dy u. Otherwise low_rank_grad_products and the weight gradient apart, its
// float32 sums from the tensor-core kernel where it runs (else composed, from widened inputs).
std::tuple<at::Tensor, at::Tensor, at::Tensor> grad_weight_and_low_rank_products_cuda(
    const at::Tensor& grad_y, const at::Tensor& x, const Layout& layout, const at::Tensor& u,
    const at::Tensor& projected, bool ones_column) {
  constexpr const char* op = "pixelfly::grad_weight_and_low_rank_products";
  const int64_t r = check_grad_weight_and_low_rank_args(op, grad_y, x, layout, u, projected);
  const c10::optional<cuda::DeviceLayout> one_pass = one_pass_layout(op, x, layout, r);
  if (!one_pass) return grad_weight_and_low_rank_products_apart(op, grad_y, x, layout, u, projected, ones_column);
  const cuda::DeviceLayout& d = *one_pass;
  const auto kind = scalar_kind(op, x, "x");
  const c10::cuda::CUDAGuard guard(x.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor dy_rows = device_rows(grad_y), x_rows = device_rows(x);
  const at::Tensor u_c = device_contiguous(u), p_rows = device_pitched_rows(projected);
  const int64_t tokens = x_rows.size(0), out = layout->out_features();
  check_int32_extent(op, "tokens", tokens);
  const int64_t sums = cuda::grad_weight_workspace_elements(d, kind);
  constexpr int64_t kDyUColumns = cuda::kMaxGradientFoldRank;
  const int64_t width = r + (ones_column ? 8 : 0);  // product's pitch, as low_rank_grad_products lays it out
  // The blocks' sums, dy u's (tokens x 32), the product (out x width): one buffer, one memset.
  at::Tensor scratch = at::empty({sums + tokens * kDyUColumns + out * width}, x.options().dtype(at::kFloat));
  check_launch(op, cudaMemsetAsync(scratch.data_ptr(), 0, scratch.nbytes(), stream));
  cuda::GradientLowRank low_rank;
  low_rank.u = u_c.data_ptr();
  low_rank.a = p_rows.data_ptr();
  low_rank.a_pitch = p_rows.stride(0);
  low_rank.rank = r;
  low_rank.dy_u_sums = scratch.data_ptr<float>() + sums;
  low_rank.product = low_rank.dy_u_sums + tokens * kDyUColumns;
  low_rank.product_pitch = width;
  low_rank.ones = ones_column;
  check_launch(op, cuda::accumulate_grad_weight(d, kind, tokens, dy_rows.data_ptr(), x_rows.data_ptr(),
                                                scratch.data_ptr<float>(), nullptr, &low_rank, stream));
  at::Tensor dy_u = at::empty({tokens, kDyUColumns}, x.options());
  check_launch(op, cuda::round_to_storage(kind, low_rank.dy_u_sums, dy_u.data_ptr(), dy_u.numel(), stream));
  const at::Tensor product = scratch.narrow(0, sums + tokens * kDyUColumns, out * width).view({out, width});
  return {dy_u.narrow(1, 0, r).view(sizes_with_last(grad_y, r)), product.narrow(1, 0, r + (ones_column ? 1 : 0)),
          scratch.narrow(0, 0, sums).view({layout->nnz(), layout->block(), layout->block()})};
}

}  // namespace
}  // namespace pixelfly::ops

TORCH_LIBRARY_IMPL(pixelfly, CUDA, m) {
  m.impl("mixed_linear", &pixelfly::ops::mixed_linear_cuda);
  m.impl("mixed_linear_grad_input", &pixelfly::ops::mixed_linear_grad_input_cuda);
  m.impl("block_sparse_linear", &pixelfly::ops::forward_cuda);
  m.impl("block_sparse_linear_grad_input", &pixelfly::ops::grad_input_cuda);
  m.impl("block_sparse_linear_grad_weight", &pixelfly::ops::grad_weight_cuda);
  m.impl("low_rank_grad_products", &pixelfly::ops::low_rank_grad_products_cuda);
  m.impl("pixelfly_linear_grad_params", &pixelfly::ops::pixelfly_linear_grad_params_cuda);
  m.impl("grad_weight_and_low_rank_products", &pixelfly::ops::grad_weight_and_low_rank_products_cuda);
  m.impl("grad_weight_and_low_rank_products_is_one_pass",
         &pixelfly::ops::grad_weight_and_low_rank_products_is_one_pass_cuda);
}
