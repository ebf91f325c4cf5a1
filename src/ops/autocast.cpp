// Automatic mixed precision for the differentiable operators: under autocast (bfloat16 training
// on CUDA, or CPU autocast) the activations and weights are cast to the autocast dtype, as
// torch.nn.Linear's are, before the operator runs; gradients flow back through the casts to the
// float32 parameters. pixelfly_linear casts its parameters inside its autograd function
// instead (ops/pixelfly_linear_autograd.h): the same casts without an autograd node each. The
// mixing weight gamma stays in its own dtype (a 0-d tensor).
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/library.h>

#include "pixelfly/ops/block_sparse_ops.h"
#include "ops/pixelfly_linear_autograd.h"

namespace pixelfly::ops {
namespace {

template <c10::DeviceType device>
at::Tensor block_sparse_linear_autocast(const at::Tensor& x, const at::Tensor& values, const Layout& layout) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const at::ScalarType dtype = at::autocast::get_autocast_dtype(device);
  return block_sparse_linear(at::autocast::cached_cast(dtype, x, device),
                             at::autocast::cached_cast(dtype, values, device), layout);
}

template <c10::DeviceType device>
at::Tensor pixelfly_linear_autocast(const at::Tensor& x, const at::Tensor& values, const Layout& layout,
                                    const at::Tensor& u, const at::Tensor& v, const at::Tensor& gamma,
                                    const c10::optional<at::Tensor>& bias, bool gamma_is_logit) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const at::ScalarType dtype = at::autocast::get_autocast_dtype(device);
  return pixelfly_linear_function(at::autocast::cached_cast(dtype, x, device), values, layout, u, v, gamma, bias,
                                  gamma_is_logit);
}

}  // namespace
}  // namespace pixelfly::ops

TORCH_LIBRARY_IMPL(pixelfly, AutocastCPU, m) {
  m.impl("block_sparse_linear", &pixelfly::ops::block_sparse_linear_autocast<c10::DeviceType::CPU>);
  m.impl("pixelfly_linear", &pixelfly::ops::pixelfly_linear_autocast<c10::DeviceType::CPU>);
}

TORCH_LIBRARY_IMPL(pixelfly, AutocastCUDA, m) {
  m.impl("block_sparse_linear", &pixelfly::ops::block_sparse_linear_autocast<c10::DeviceType::CUDA>);
  m.impl("pixelfly_linear", &pixelfly::ops::pixelfly_linear_autocast<c10::DeviceType::CUDA>);
}
