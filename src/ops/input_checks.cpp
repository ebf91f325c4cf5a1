// Argument checks shared by every backend of the block-sparse operators.
#include "ops/input_checks.h"

#include <c10/util/Exception.h>

#include <limits>

namespace pixelfly::ops {

void check_features(const char* op, const char* name, const at::Tensor& t, int64_t expected,
                    const char* expected_name) {
  TORCH_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
  TORCH_CHECK(t.dim() >= 1, op, ": ", name, " must have at least one dimension (..., ",
              expected_name, "), got a scalar");
  TORCH_CHECK(t.size(-1) == expected, op, ": ", name, " must have last dimension ", expected_name,
              " = ", expected, ", got shape ", t.sizes());
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
  TORCH_CHECK(values.scalar_type() == other.scalar_type(), op, ": values has dtype ",
              values.scalar_type(), " but ", other_name, " has dtype ", other.scalar_type(),
              "; both must match");
  TORCH_CHECK(values.device() == other.device(), op, ": values is on ", values.device(), " but ",
              other_name, " is on ", other.device(), "; both must be on one device");
}

void check_same_rows(const char* op, const at::Tensor& a, const char* a_name, const at::Tensor& b,
                     const char* b_name) {
  TORCH_CHECK(a.sizes().slice(0, a.dim() - 1) == b.sizes().slice(0, b.dim() - 1), op, ": ", a_name,
              " and ", b_name, " must have the same leading shape, got ", a.sizes(), " and ",
              b.sizes());
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), op, ": ", a_name, " has dtype ", a.scalar_type(),
              " but ", b_name, " has dtype ", b.scalar_type(), "; both must match");
  TORCH_CHECK(a.device() == b.device(), op, ": ", a_name, " is on ", a.device(), " but ", b_name,
              " is on ", b.device(), "; both must be on one device");
}

void check_int32_extent(const char* op, const char* what, int64_t value) {
  TORCH_CHECK(value <= std::numeric_limits<int32_t>::max(), op, ": ", what, " = ", value,
              " exceeds the 32-bit index range of the kernels (", std::numeric_limits<int32_t>::max(),
              ")");
}

}  // namespace pixelfly::ops
