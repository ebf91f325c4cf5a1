// Autograd for the three block-sparse operators, to any order. Y = X W^T, its grad_input
// dX = dY W and its grad_weight dW = blocks of dY^T X are linear in each argument, and each
// one's derivatives are the other operators:
//   block_sparse_linear(x, W):  dx = grad_input(dy, W),       dW = grad_weight(dy, x)
//   grad_input(g, W):           dg = block_sparse_linear(h, W), dW = grad_weight(g, h)   (h: d(dX))
//   grad_weight(g, x):          dg = block_sparse_linear(x, H), dx = grad_input(g, H)    (H: d(dW))
// so a backward run with create_graph (a gradient penalty, a Hessian-vector product) records
// differentiable nodes, and without it costs one dispatch per operator. Each input's gradient is
// computed only when that input needs one. The same implementation serves every backend, since
// the operators dispatch by device.
#include <torch/autograd.h>
#include <torch/library.h>

#include "pixelfly/ops/block_sparse_ops.h"

namespace pixelfly::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// One operator (a, b) -> out with the two derivative operators above: kForward(a, b) is the
// operator itself, and for an incoming gradient h the gradients of a and b are kGradA(h, b, a)
// and kGradB(h, b, a) (each receives (h, b, a) and picks its arguments).
template <at::Tensor (*kForward)(const at::Tensor&, const at::Tensor&, const Layout&),
          at::Tensor (*kGradA)(const at::Tensor& h, const at::Tensor& b, const at::Tensor& a, const Layout&),
          at::Tensor (*kGradB)(const at::Tensor& h, const at::Tensor& b, const at::Tensor& a, const Layout&)>
class LinearInEachFunction : public torch::autograd::Function<LinearInEachFunction<kForward, kGradA, kGradB>> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b, const Layout& layout) {
    ctx->save_for_backward({a, b});
    ctx->saved_data["layout"] = layout;
    at::AutoDispatchBelowADInplaceOrView guard;
    return kForward(a, b, layout);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const Layout layout = ctx->saved_data["layout"].toCustomClass<LayoutHandle>();
    const at::Tensor& h = grad_outputs[0];
    at::Tensor grad_a, grad_b;
    if (ctx->needs_input_grad(0)) grad_a = kGradA(h, saved[1], saved[0], layout);
    if (ctx->needs_input_grad(1)) grad_b = kGradB(h, saved[1], saved[0], layout);
    return {grad_a, grad_b, at::Tensor()};
  }

  // The Autograd kernel: a node only where one is recorded (in a first-order backward, and under
  // no_grad, the operator is called straight).
  static at::Tensor call(const at::Tensor& a, const at::Tensor& b, const Layout& layout) {
    if (!at::GradMode::is_enabled() || !(a.requires_grad() || b.requires_grad())) {
      at::AutoDispatchBelowADInplaceOrView guard;
      return kForward(a, b, layout);
    }
    return LinearInEachFunction::apply(a, b, layout);
  }
};

// block_sparse_linear(x, W): h = dY.
at::Tensor linear_grad_x(const at::Tensor& h, const at::Tensor& w, const at::Tensor&, const Layout& l) {
  return block_sparse_linear_grad_input(h, w, l);
}
at::Tensor linear_grad_w(const at::Tensor& h, const at::Tensor&, const at::Tensor& x, const Layout& l) {
  return block_sparse_linear_grad_weight(h, x, l);
}
// grad_input(g, W): h has dX's shape.
at::Tensor grad_input_grad_g(const at::Tensor& h, const at::Tensor& w, const at::Tensor&, const Layout& l) {
  return block_sparse_linear(h, w, l);
}
at::Tensor grad_input_grad_w(const at::Tensor& h, const at::Tensor&, const at::Tensor& g, const Layout& l) {
  return block_sparse_linear_grad_weight(g, h, l);
}
// grad_weight(g, x): h has the values' shape.
at::Tensor grad_weight_grad_g(const at::Tensor& h, const at::Tensor& x, const at::Tensor&, const Layout& l) {
  return block_sparse_linear(x, h, l);
}
at::Tensor grad_weight_grad_x(const at::Tensor& h, const at::Tensor&, const at::Tensor& g, const Layout& l) {
  return block_sparse_linear_grad_input(g, h, l);
}

using LinearFunction = LinearInEachFunction<block_sparse_linear, linear_grad_x, linear_grad_w>;
using GradInputFunction = LinearInEachFunction<block_sparse_linear_grad_input, grad_input_grad_g, grad_input_grad_w>;
using GradWeightFunction =
    LinearInEachFunction<block_sparse_linear_grad_weight, grad_weight_grad_g, grad_weight_grad_x>;

}  // namespace
}  // namespace pixelfly::ops

TORCH_LIBRARY_IMPL(pixelfly, Autograd, m) {
  m.impl("block_sparse_linear", &pixelfly::ops::LinearFunction::call);
  m.impl("block_sparse_linear_grad_input", &pixelfly::ops::GradInputFunction::call);
  m.impl("block_sparse_linear_grad_weight", &pixelfly::ops::GradWeightFunction::call);
}
