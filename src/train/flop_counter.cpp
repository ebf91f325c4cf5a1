// FLOP counting through RecordFunction callbacks.
#include "pixelfly/train/flop_counter.h"

#include <ATen/core/ivalue.h>
#include <ATen/record_function.h>

#include <cstring>
#include <memory>

#include "pixelfly/ops/layout_handle.h"

namespace pixelfly::train {
namespace {

thread_local double counted_flops = 0;
thread_local int counted_depth = 0;

double numel(const c10::IValue& v) { return v.isTensor() ? static_cast<double>(v.toTensor().numel()) : 0.0; }
int64_t size(const c10::IValue& v, int64_t dim) { return v.isTensor() ? v.toTensor().size(dim) : 0; }

// FLOPs of one call of a counted operator, or -1 when the operator is not one of them.
double operator_flops(const at::RecordFunction& fn) {
  const char* name = fn.name();
  const auto in = fn.inputs();
  auto is = [&](const char* candidate) { return std::strcmp(name, candidate) == 0; };
  if (is("aten::mm")) return 2.0 * numel(in[0]) * size(in[1], 1);
  if (is("aten::addmm")) return 2.0 * numel(in[1]) * size(in[2], 1);
  if (is("aten::bmm")) return 2.0 * numel(in[0]) * size(in[1], 2);
  if (is("aten::baddbmm")) return 2.0 * numel(in[1]) * size(in[2], 2);
  if (is("aten::convolution")) {
    // Output elements x (input channels / groups x kernel area): weight (out, in/groups, kh, kw).
    // The output size is not known at the start; the end callback multiplies it in.
    return -2.0;
  }
  if (std::strncmp(name, "aten::_scaled_dot_product", 25) == 0 || is("aten::scaled_dot_product_attention")) {
    // q (B, H, T, D), k (B, H, S, D): QK^T and PV, 2 x 2 x B H T S D. The backward kernels
    // (grad_out, q, k, v, ...) take four such products: twice the forward.
    const bool backward = std::strstr(name, "_backward") != nullptr;
    const at::Tensor& q = in[backward ? 1 : 0].toTensor();
    const at::Tensor& k = in[backward ? 2 : 1].toTensor();
    return (backward ? 8.0 : 4.0) * static_cast<double>(q.numel()) * static_cast<double>(k.size(-2));
  }
  // The block-sparse operators and their backward: every stored weight is used once per token.
  auto tokens = [&] { return numel(in[0]) / static_cast<double>(size(in[0], -1)); };  // x or grad_y (..., features)
  if (is("pixelfly::block_sparse_linear") || is("pixelfly::block_sparse_linear_grad_input")) {
    return 2.0 * tokens() * numel(in[1]);  // x or grad_y, values, layout
  }
  if (is("pixelfly::block_sparse_linear_grad_weight")) {  // grad_y, x, layout
    const ops::Layout layout = in[2].toCustomClass<ops::LayoutHandle>();
    return 2.0 * tokens() * static_cast<double>(layout->nnz() * layout->block() * layout->block());
  }
  if (is("pixelfly::mixed_linear")) {  // x, values, layout, scale, a (..., r), b (out, r), bias
    return 2.0 * tokens() * (numel(in[1]) + numel(in[5]));
  }
  if (is("pixelfly::mixed_linear_grad_input")) {  // grad_y, values, layout, scale, a (..., r), b_t (r, in)
    return 2.0 * tokens() * numel(in[1]) + 2.0 * numel(in[4]) * static_cast<double>(size(in[5], 1));
  }
  if (is("pixelfly::low_rank_grad_products")) {  // grad_y (..., out), u (out, r), projected (..., w), ones_column
    // The ones column counts as one more column of projected.
    return 2.0 * tokens() * size(in[0], -1) * (size(in[1], 1) + size(in[2], -1) + (in[3].toBool() ? 1 : 0));
  }
  if (is("pixelfly::grad_weight_and_low_rank_products")) {
    // grad_y (..., out), x, layout, u (out, r), projected (..., r), ones_column: dy^T x on the
    // blocks, dy u, dy^T [projected | 1].
    const ops::Layout layout = in[2].toCustomClass<ops::LayoutHandle>();
    const double blocks = static_cast<double>(layout->nnz() * layout->block() * layout->block());
    const double out = size(in[0], -1), r = size(in[3], 1);
    return 2.0 * tokens() * (blocks + out * r + out * (r + (in[5].toBool() ? 1 : 0)));
  }
  if (is("pixelfly::pixelfly_linear_grad_params")) {
    // grad_y (..., out), x (..., in), values, layout, u, gamma, product (out, w),
    // grad_projected (..., r), bias, grad_weight_sums: dy^T x on the blocks (unless given),
    // x^T grad_projected.
    const bool given = in.size() > 9 && in[9].isTensor() && in[9].toTensor().defined();
    return 2.0 * tokens() * ((given ? 0.0 : numel(in[2])) + size(in[1], -1) * size(in[7], -1));
  }
  return -1.0;
}

struct ConvolutionContext : at::ObserverContext {
  double per_output = 0;
};

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  if (fn.num_inputs() == 0) return nullptr;
  const double flops = operator_flops(fn);
  if (flops == -1.0) return nullptr;
  auto context = std::make_unique<ConvolutionContext>();
  if (counted_depth == 0) {
    if (flops == -2.0) {
      const at::Tensor& weight = fn.inputs()[1].toTensor();
      context->per_output = 2.0 * static_cast<double>(weight.numel() / weight.size(0));
    } else {
      counted_flops += flops;
    }
  }
  ++counted_depth;
  return context;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext* context) {
  if (context == nullptr) return;
  --counted_depth;
  const double per_output = static_cast<ConvolutionContext*>(context)->per_output;
  if (per_output > 0) {
    const auto outputs = fn.outputs();
    if (!outputs.empty() && outputs[0].isTensor()) counted_flops += per_output * numel(outputs[0]);
  }
}

}  // namespace

double count_flops(const std::function<void()>& run) {
  counted_flops = 0;
  counted_depth = 0;
  const at::CallbackHandle handle =
      at::addThreadLocalCallback(at::RecordFunctionCallback(on_start, on_end).needsInputs(true).needsOutputs(true));
  try {
    run();
  } catch (...) {
    at::removeCallback(handle);
    throw;
  }
  at::removeCallback(handle);
  return counted_flops;
}

}  // namespace pixelfly::train
