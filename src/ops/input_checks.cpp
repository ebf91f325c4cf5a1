// Argument checks shared by every backend of the block-sparse operators.
#include "ops/input_checks.h"

#include <c10/util/Exception.h>

#include <limits>

namespace pixelfly::ops {

const BlockLayout& check_forward_args(const char* op, const at::Tensor& x, const at::Tensor& values, const Layout& layout) {
  TORCH_CHECK(layout, op, ": layout is null");
  check_features(op, "x", x, layout->in_features(), "in_features");
  check_values(op, values, layout, x, "x");
  return layout->layout();
}

const BlockLayout& check_grad_input_args(const char* op, const at::Tensor& grad_y, const at::Tensor& values,
                                         const Layout& layout) {
  TORCH_CHECK(layout, op, ": layout is null");
  check_features(op, "grad_y", grad_y, layout->out_features(), "out_features");
  check_values(op, values, layout, grad_y, "grad_y");
  return layout->layout();
}

const BlockLayout& check_grad_weight_args(const char* op, const at::Tensor& grad_y, const at::Tensor& x,
                                          const Layout& layout) {
  TORCH_CHECK(layout, op, ": layout is null");
  check_features(op, "grad_y", grad_y, layout->out_features(), "out_features");
  check_features(op, "x", x, layout->in_features(), "in_features");
  check_same_rows(op, grad_y, "grad_y", x, "x");
  return layout->layout();
}

void check_features(const char* op, const char* name, const at::Tensor& t, int64_t expected,
                    const char* expected_name) {
  TORCH_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
  TORCH_CHECK(t.dim() >= 1, op, ": ", name, " must have at least one dimension (..., ",
              expected_name, "), got a scalar");
  TORCH_CHECK(t.size(-1) == expected, op, ": ", name, " must have last dimension ", expected_name,
              " = ", expected, ", got shape ", t.sizes());
}

void check_same_dtype(const char* op, const at::Tensor& a, const char* a_name, const at::Tensor& b,
                      const char* b_name) {
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), op, ": ", a_name, " has dtype ", a.scalar_type(), " but ", b_name,
              " has dtype ", b.scalar_type(), "; both must match");
}

void check_values(const char* op, const at::Tensor& values, const Layout& layout,
                  const at::Tensor& other, const char* other_name) {
  TORCH_CHECK(layout, op, ": layout is null");
  const BlockLayout& l = layout->layout();
  TORCH_CHECK(values.defined(), op, ": values is an undefined tensor");
  TORCH_CHECK(values.dim() == 3 && values.size(0) == l.nnz() && values.size(1) == l.block() &&
                  values.size(2) == l.block(),
              op, ": values must have shape (nnz, block, block) = (", l.nnz(), ", ", l.block(), ", ",
              l.block(), ") for this layout, got ", values.sizes());
  check_same_dtype(op, values, "values", other, other_name);
  TORCH_CHECK(values.device() == other.device(), op, ": values is on ", values.device(), " but ",
              other_name, " is on ", other.device(), "; both must be on one device");
}

void check_same_rows(const char* op, const at::Tensor& a, const char* a_name, const at::Tensor& b,
                     const char* b_name) {
  TORCH_CHECK(a.sizes().slice(0, a.dim() - 1) == b.sizes().slice(0, b.dim() - 1), op, ": ", a_name,
              " and ", b_name, " must have the same leading shape, got ", a.sizes(), " and ",
              b.sizes());
  check_same_dtype(op, a, a_name, b, b_name);
  TORCH_CHECK(a.device() == b.device(), op, ": ", a_name, " is on ", a.device(), " but ", b_name,
              " is on ", b.device(), "; both must be on one device");
}

void check_mixed_arguments(const char* op, const at::Tensor& activations, const at::Tensor& scale,
                           const at::Tensor& low_rank_a, const at::Tensor& low_rank_b, int64_t b_rows, int64_t b_cols,
                           int b_rank_dim, const c10::optional<at::Tensor>& bias, int64_t bias_size) {
  TORCH_CHECK(scale.defined() && scale.dim() == 0 && at::isFloatingType(scale.scalar_type()), op,
              ": scale must be a 0-d floating tensor, got ", scale.defined() ? scale.sizes() : at::IntArrayRef{});
  TORCH_CHECK(scale.device() == activations.device(), op, ": scale is on ", scale.device(), " but the activations are on ",
              activations.device());
  TORCH_CHECK(low_rank_a.defined() && low_rank_a.dim() == activations.dim() &&
                  low_rank_a.sizes().slice(0, low_rank_a.dim() - 1) == activations.sizes().slice(0, activations.dim() - 1),
              op, ": low_rank_a must have the activations' leading shape ", activations.sizes().slice(0, activations.dim() - 1),
              " and a last dimension r, got ", low_rank_a.sizes());
  const int64_t rank = low_rank_a.size(-1);
  TORCH_CHECK(low_rank_b.defined() && low_rank_b.dim() == 2 && low_rank_b.size(b_rank_dim) == rank &&
                  low_rank_b.size(1 - b_rank_dim) == (b_rank_dim == 1 ? b_rows : b_cols),
              op, ": low_rank_b must have shape (", b_rank_dim == 1 ? std::to_string(b_rows) : std::string("r"), ", ",
              b_rank_dim == 1 ? std::string("r") : std::to_string(b_cols), ") with r = ", rank, ", got ", low_rank_b.sizes());
  check_same_rows(op, activations, "the activations", low_rank_a, "low_rank_a");
  TORCH_CHECK(low_rank_b.scalar_type() == activations.scalar_type() && low_rank_b.device() == activations.device(), op,
              ": low_rank_b must match the activations' dtype and device");
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == bias_size, op, ": bias must have shape (", bias_size, "), got ",
                bias->sizes());
    TORCH_CHECK(bias->scalar_type() == activations.scalar_type() && bias->device() == activations.device(), op,
                ": bias must match the activations' dtype and device");
  }
}

void check_low_rank_grad_product_args(const char* op, const at::Tensor& grad_y, const at::Tensor& u,
                                      const at::Tensor& projected) {
  TORCH_CHECK(grad_y.defined() && grad_y.dim() >= 1, op, ": grad_y must be (..., out_features), got ",
              grad_y.defined() ? grad_y.sizes() : at::IntArrayRef{});
  TORCH_CHECK(u.defined() && u.dim() == 2 && u.size(0) == grad_y.size(-1), op,
              ": u must have shape (out_features, r) = (", grad_y.size(-1), ", r), got ",
              u.defined() ? u.sizes() : at::IntArrayRef{});
  TORCH_CHECK(u.scalar_type() == grad_y.scalar_type() && u.device() == grad_y.device(), op,
              ": u must match grad_y's dtype and device, got ", u.scalar_type(), " on ", u.device(), " and ",
              grad_y.scalar_type(), " on ", grad_y.device());
  check_same_rows(op, projected, "projected", grad_y, "grad_y");
}

int64_t check_parameter_gradient_args(const char* op, const at::Tensor& grad_y, const at::Tensor& x,
                                      const at::Tensor& values, const Layout& layout, const at::Tensor& u,
                                      const at::Tensor& gamma, const at::Tensor& product,
                                      const at::Tensor& grad_projected, bool bias,
                                      const c10::optional<at::Tensor>& grad_weight_sums) {
  const BlockLayout& l = check_grad_weight_args(op, grad_y, x, layout);
  check_values(op, values, layout, x, "x");
  TORCH_CHECK(u.defined() && u.dim() == 2 && u.size(0) == l.out_features(), op, ": u must have shape (out_features, r) = (",
              l.out_features(), ", r), got ", u.defined() ? u.sizes() : at::IntArrayRef{});
  const int64_t rank = u.size(1);
  TORCH_CHECK(u.scalar_type() == x.scalar_type() && u.device() == x.device(), op,
              ": u must match the activations' dtype and device");
  TORCH_CHECK(gamma.defined() && gamma.dim() == 0 && at::isFloatingType(gamma.scalar_type()) &&
                  gamma.device() == x.device(),
              op, ": gamma must be a 0-d floating tensor on the activations' device");
  const auto accumulate = at::promote_types(x.scalar_type(), at::kFloat);
  TORCH_CHECK(product.defined() && product.dim() == 2 && product.size(0) == l.out_features() &&
                  product.size(1) >= rank + (bias ? 1 : 0),
              op, ": product must have shape (out_features, w) = (", l.out_features(), ", w) with w >= r",
              bias ? " + 1" : "", " = ", rank + (bias ? 1 : 0), " (grad_y^T projected), got ",
              product.defined() ? product.sizes() : at::IntArrayRef{});
  TORCH_CHECK(product.scalar_type() == accumulate && product.device() == x.device(), op, ": product must be ",
              accumulate, " on the activations' device, got ", product.scalar_type(), " on ", product.device());
  check_same_rows(op, grad_projected, "grad_projected", x, "x");
  TORCH_CHECK(grad_projected.size(-1) == rank, op, ": grad_projected must have last dimension r = ", rank, ", got shape ",
              grad_projected.sizes());
  if (grad_weight_sums.has_value() && grad_weight_sums->defined()) {
    const at::Tensor& s = *grad_weight_sums;
    TORCH_CHECK(s.sizes() == at::IntArrayRef({l.nnz(), l.block(), l.block()}) && s.scalar_type() == accumulate &&
                    s.device() == x.device(),
                op, ": grad_weight_sums must be (nnz, b, b) = (", l.nnz(), ", ", l.block(), ", ", l.block(), ") ",
                accumulate, " on the activations' device, got ", s.sizes(), " ", s.scalar_type(), " on ", s.device());
  }
  return rank;
}

int64_t check_grad_weight_and_low_rank_args(const char* op, const at::Tensor& grad_y, const at::Tensor& x,
                                            const Layout& layout, const at::Tensor& u, const at::Tensor& projected) {
  check_grad_weight_args(op, grad_y, x, layout);
  check_same_dtype(op, grad_y, "grad_y", x, "x");
  check_low_rank_grad_product_args(op, grad_y, u, projected);
  TORCH_CHECK(projected.size(-1) == u.size(1), op, ": projected must have last dimension r = ", u.size(1),
              ", got shape ", projected.sizes());
  return u.size(1);
}

void check_int32_extent(const char* op, const char* what, int64_t value) {
  TORCH_CHECK(value <= std::numeric_limits<int32_t>::max(), op, ": ", what, " = ", value,
              " exceeds the 32-bit index range of the kernels (", std::numeric_limits<int32_t>::max(),
              ")");
}

}  // namespace pixelfly::ops
