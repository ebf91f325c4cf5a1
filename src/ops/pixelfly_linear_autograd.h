// The autograd function behind pixelfly::pixelfly_linear, for the operator's own entry point and
// for its autocast rule.
#pragma once

#include <ATen/core/Tensor.h>

#include "pixelfly/ops/layout_handle.h"

namespace pixelfly::ops {

// y = gamma x W^T + (1 - gamma) (x v) u^T + bias with values, u, v and bias in any floating
// dtype: they are cast to x's dtype inside the function (no autograd cast nodes, one copy each)
// and their gradients come back in their own dtypes. Under autocast the float32 parameters are
// passed as they are. With gamma_is_logit, gamma holds the mix's logit (pixelfly_linear_ops.h).
at::Tensor pixelfly_linear_function(const at::Tensor& x, const at::Tensor& values, const Layout& layout,
                                    const at::Tensor& u, const at::Tensor& v, const at::Tensor& gamma,
                                    const c10::optional<at::Tensor>& bias, bool gamma_is_logit);

}  // namespace pixelfly::ops
