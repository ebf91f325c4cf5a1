// The Autograd kernel of pixelfly_linear's building blocks (mixed_linear, mixed_linear_grad_input,
// low_rank_grad_products, grad_weight_and_low_rank_products and its query,
// pixelfly_linear_grad_params), which have no derivatives of their own:
// pixelfly_linear calls them where autograd records nothing (inside its autograd function, and in
// a first-order backward). Called where autograd records, with an input that needs a gradient,
// they stop with a message, instead of returning results that the graph would treat as
// constants (gradients silently missing); anywhere else they run as they are.
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/GradMode.h>
#include <torch/library.h>

namespace pixelfly::ops {
namespace {

void call_without_derivatives(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  if (c10::GradMode::is_enabled()) {
    const auto& arguments = op.schema().arguments();
    const size_t first = stack->size() - arguments.size();
    for (size_t i = 0; i < arguments.size(); ++i) {
      const c10::IValue& value = (*stack)[first + i];
      TORCH_CHECK(!value.isTensor() || !value.toTensor().requires_grad(), op.schema().name(), ": argument '",
                  arguments[i].name(),
                  "' requires grad, but this operator has no derivatives; for a differentiable layer call "
                  "pixelfly::pixelfly_linear (or run this operator under torch.no_grad())");
    }
  }
  at::AutoDispatchBelowADInplaceOrView guard;
  op.callBoxed(stack);
}

}  // namespace
}  // namespace pixelfly::ops

TORCH_LIBRARY_IMPL(pixelfly, Autograd, m) {
  for (const char* name :
       {"mixed_linear", "mixed_linear_grad_input", "low_rank_grad_products", "pixelfly_linear_grad_params",
        "grad_weight_and_low_rank_products", "grad_weight_and_low_rank_products_is_one_pass"}) {
    m.impl(name, torch::CppFunction::makeFromBoxedFunction<&pixelfly::ops::call_without_derivatives>());
  }
}
