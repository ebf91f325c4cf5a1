// Autograd for pixelfly::block_sparse_linear: dX through the grad_input operator and dW through
// the grad_weight operator, each computed only when that input needs a gradient. The same
// implementation serves every backend, since both backward operators dispatch by device.
#include <torch/autograd.h>
#include <torch/library.h>

#include "pixelfly/ops/block_sparse_ops.h"

namespace pixelfly::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class BlockSparseLinearFunction : public torch::autograd::Function<BlockSparseLinearFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& values,
                            const Layout& layout) {
    ctx->save_for_backward({x, values});
    ctx->saved_data["layout"] = layout;
    at::AutoDispatchBelowADInplaceOrView guard;
    return block_sparse_linear(x, values, layout);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const Layout layout = ctx->saved_data["layout"].toCustomClass<LayoutHandle>();
    const at::Tensor& grad_y = grad_outputs[0];
    at::Tensor grad_x, grad_values;
    if (ctx->needs_input_grad(0)) grad_x = block_sparse_linear_grad_input(grad_y, saved[1], layout);
    if (ctx->needs_input_grad(1)) grad_values = block_sparse_linear_grad_weight(grad_y, saved[0], layout);
    return {grad_x, grad_values, at::Tensor()};
  }
};

at::Tensor block_sparse_linear_autograd(const at::Tensor& x, const at::Tensor& values,
                                        const Layout& layout) {
  return BlockSparseLinearFunction::apply(x, values, layout);
}

}  // namespace
}  // namespace pixelfly::ops

TORCH_LIBRARY_IMPL(pixelfly, Autograd, m) {
  m.impl("block_sparse_linear", &pixelfly::ops::block_sparse_linear_autograd);
}
