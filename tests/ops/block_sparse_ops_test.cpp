// Block-sparse operators on CPU against a float64 dense masked reference: forward and both
// gradients, finite differences, bfloat16, autograd wiring and argument errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "pixelfly/ops/block_sparse_ops.h"
#include "pixelfly/pattern/flat_butterfly.h"
#include "pixelfly/pattern/random_layout.h"

#include "common/error_message.h"

namespace pixelfly {
namespace {

using pixelfly::testing::error_of;

using ops::Layout;

// Dense out x in float64 matrix of (values, layout), built element by element from the CSR.
at::Tensor reference_dense(const at::Tensor& values, const BlockLayout& l) {
  const at::Tensor v = values.to(at::kDouble).contiguous();
  at::Tensor dense = at::zeros({l.block_rows() * l.block(), l.block_cols() * l.block()}, at::kDouble);
  auto d = dense.accessor<double, 2>();
  auto a = v.accessor<double, 3>();
  for (int64_t r = 0; r < l.block_rows(); ++r) {
    for (int64_t i = l.row_ptr()[r]; i < l.row_ptr()[r + 1]; ++i) {
      for (int64_t p = 0; p < l.block(); ++p) {
        for (int64_t q = 0; q < l.block(); ++q) d[r * l.block() + p][l.col_idx()[i] * l.block() + q] = a[i][p][q];
      }
    }
  }
  return dense.narrow(0, 0, l.out_features()).narrow(1, 0, l.in_features());
}

// The reference dW: dY^T X in float64, read back on the nonzero blocks (padding is zero).
at::Tensor reference_grad_weight(const at::Tensor& grad_y, const at::Tensor& x, const BlockLayout& l) {
  const at::Tensor dy = grad_y.to(at::kDouble).reshape({-1, l.out_features()});
  const at::Tensor xx = x.to(at::kDouble).reshape({-1, l.in_features()});
  at::Tensor full = at::zeros({l.block_rows() * l.block(), l.block_cols() * l.block()}, at::kDouble);
  full.narrow(0, 0, l.out_features()).narrow(1, 0, l.in_features()).copy_(dy.t().matmul(xx));
  at::Tensor out = at::empty({l.nnz(), l.block(), l.block()}, at::kDouble);
  for (int64_t r = 0; r < l.block_rows(); ++r) {
    for (int64_t i = l.row_ptr()[r]; i < l.row_ptr()[r + 1]; ++i) {
      out[i].copy_(full.narrow(0, r * l.block(), l.block()).narrow(1, l.col_idx()[i] * l.block(), l.block()));
    }
  }
  return out;
}

double relative_error(const at::Tensor& out, const at::Tensor& ref) {
  const double denom = ref.to(at::kDouble).norm().item<double>();
  const double diff = (out.to(at::kDouble) - ref.to(at::kDouble)).norm().item<double>();
  if (!std::isfinite(diff)) return INFINITY;
  return denom == 0.0 ? diff : diff / denom;
}

struct Case {
  std::string name;
  BlockLayout layout;
};

std::vector<Case> layouts() {
  std::vector<Case> cases = {
      {"random 70x45 b16", random_layout(70, 45, 16, 0.4, 1)},
      {"random 128x256 b32", random_layout(128, 256, 32, 0.3, 2)},
      {"random 33x200 b8", random_layout(33, 200, 8, 0.2, 3)},
      {"butterfly 256x96 n8 k2 b16", flat_butterfly_layout({256, 96, 8, 2, 16})},
      {"butterfly 100x130 n4 k1 b8", flat_butterfly_layout({100, 130, 4, 1, 8})},
      {"butterfly 64x64 n8 k3 b4", flat_butterfly_layout({64, 64, 8, 3, 4})},
      {"empty rows 40x24 b8", BlockLayout::from_block_mask(40, 24, 8, {1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1})},
  };
  return cases;
}

const std::vector<std::vector<int64_t>> kLeadingShapes = {{37}, {2, 5}, {1}, {3, 1, 7}};

void check_all(at::ScalarType dtype, double tolerance) {
  for (const Case& c : layouts()) {
    const Layout layout = ops::make_layout(c.layout);
    const BlockLayout& l = c.layout;
    for (const auto& lead : kLeadingShapes) {
      std::vector<int64_t> x_shape = lead, y_shape = lead;
      x_shape.push_back(l.in_features());
      y_shape.push_back(l.out_features());
      const at::Tensor x = at::randn(x_shape, at::kDouble);
      const at::Tensor dy = at::randn(y_shape, at::kDouble);
      const at::Tensor values = at::randn({l.nnz(), l.block(), l.block()}, at::kDouble);
      // Reference from the inputs as rounded to dtype, so only the product's error counts.
      const at::Tensor xr = x.to(dtype).to(at::kDouble), dyr = dy.to(dtype).to(at::kDouble);
      const at::Tensor wr = reference_dense(values.to(dtype), l);

      const at::Tensor y = ops::block_sparse_linear(x.to(dtype), values.to(dtype), layout);
      ASSERT_EQ(y.sizes(), at::IntArrayRef(y_shape));
      ASSERT_EQ(y.scalar_type(), dtype);
      EXPECT_LE(relative_error(y, xr.matmul(wr.t())), tolerance) << c.name << " forward";

      const at::Tensor dx = ops::block_sparse_linear_grad_input(dy.to(dtype), values.to(dtype), layout);
      ASSERT_EQ(dx.sizes(), at::IntArrayRef(x_shape));
      EXPECT_LE(relative_error(dx, dyr.matmul(wr)), tolerance) << c.name << " grad_input";

      const at::Tensor dw = ops::block_sparse_linear_grad_weight(dy.to(dtype), x.to(dtype), layout);
      ASSERT_EQ(dw.sizes(), values.sizes());
      EXPECT_LE(relative_error(dw, reference_grad_weight(dyr, xr, l)), tolerance) << c.name << " grad_weight";
    }
  }
}

TEST(BlockSparseOpsCpu, Float64MatchesDenseReference) { check_all(at::kDouble, 1e-12); }
TEST(BlockSparseOpsCpu, Float32MatchesDenseReference) { check_all(at::kFloat, 1e-5); }
TEST(BlockSparseOpsCpu, BFloat16MatchesDenseReferenceWithinBf16Tolerance) { check_all(at::kBFloat16, 1e-2); }

TEST(BlockSparseOpsCpu, AutogradGradientsEqualTheBackwardOperatorsAndTheReference) {
  for (const Case& c : layouts()) {
    const Layout layout = ops::make_layout(c.layout);
    const BlockLayout& l = c.layout;
    const at::Tensor x = at::randn({4, 3, l.in_features()}, at::kDouble).requires_grad_();
    const at::Tensor values = at::randn({l.nnz(), l.block(), l.block()}, at::kDouble).requires_grad_();
    const at::Tensor g = at::randn({4, 3, l.out_features()}, at::kDouble);
    (ops::block_sparse_linear(x, values, layout) * g).sum().backward();
    // Same loss through the dense reference.
    const at::Tensor x2 = x.detach().clone().requires_grad_();
    const at::Tensor v2 = values.detach().clone().requires_grad_();
    (x2.matmul(ops::block_sparse_to_dense(v2, layout).t()) * g).sum().backward();
    EXPECT_LE(relative_error(x.grad(), x2.grad()), 1e-12) << c.name;
    EXPECT_LE(relative_error(values.grad(), v2.grad()), 1e-12) << c.name;
    EXPECT_LE(relative_error(values.grad(), reference_grad_weight(g, x.detach(), l)), 1e-12) << c.name;
  }
}

TEST(BlockSparseOpsCpu, FiniteDifferencesAgreeWithAutogradInFloat64) {
  const BlockLayout l = random_layout(13, 11, 4, 0.5, 9);
  const Layout layout = ops::make_layout(l);
  const at::Tensor x = at::randn({3, 11}, at::kDouble).requires_grad_();
  const at::Tensor values = at::randn({l.nnz(), 4, 4}, at::kDouble).requires_grad_();
  const at::Tensor g = at::randn({3, 13}, at::kDouble);
  auto loss = [&](const at::Tensor& xx, const at::Tensor& vv) {
    return (ops::block_sparse_linear(xx, vv, layout) * g).sum().item<double>();
  };
  (ops::block_sparse_linear(x, values, layout) * g).sum().backward();
  const double eps = 1e-6;
  for (const at::Tensor* input : {&x, &values}) {
    const at::Tensor flat = input->detach().flatten();
    const at::Tensor grad = input->grad().flatten();
    for (int64_t i = 0; i < flat.numel(); ++i) {
      at::Tensor plus = flat.clone(), minus = flat.clone();
      plus[i] += eps;
      minus[i] -= eps;
      const at::Tensor p = plus.view(input->sizes()), m = minus.view(input->sizes());
      const double numeric = input == &x ? (loss(p, values.detach()) - loss(m, values.detach())) / (2 * eps)
                                         : (loss(x.detach(), p) - loss(x.detach(), m)) / (2 * eps);
      EXPECT_NEAR(numeric, grad[i].item<double>(), 1e-7) << (input == &x ? "x" : "values") << "[" << i << "]";
    }
  }
}

TEST(BlockSparseOpsCpu, OnlyRequestedGradientsAreComputed) {
  const BlockLayout l = random_layout(32, 48, 8, 0.5, 4);
  const Layout layout = ops::make_layout(l);
  const at::Tensor x = at::randn({5, 48});
  const at::Tensor values = at::randn({l.nnz(), 8, 8}).requires_grad_();
  ops::block_sparse_linear(x, values, layout).sum().backward();
  EXPECT_TRUE(values.grad().defined());
  EXPECT_FALSE(x.requires_grad());
}

TEST(BlockSparseOpsCpu, ZeroTokensGiveEmptyOutputsAndZeroWeightGradient) {
  const BlockLayout l = random_layout(20, 30, 8, 0.5, 5);
  const Layout layout = ops::make_layout(l);
  const at::Tensor values = at::randn({l.nnz(), 8, 8});
  EXPECT_EQ(ops::block_sparse_linear(at::randn({0, 30}), values, layout).sizes(), at::IntArrayRef({0, 20}));
  EXPECT_EQ(ops::block_sparse_linear_grad_input(at::randn({0, 20}), values, layout).sizes(),
            at::IntArrayRef({0, 30}));
  const at::Tensor dw = ops::block_sparse_linear_grad_weight(at::randn({0, 20}), at::randn({0, 30}), layout);
  EXPECT_EQ(dw.abs().sum().item<float>(), 0.0f);
}

TEST(BlockSparseOpsCpu, DenseConversionsRoundTrip) {
  const BlockLayout l = flat_butterfly_layout({100, 130, 4, 1, 8});
  const Layout layout = ops::make_layout(l);
  const at::Tensor values = at::randn({l.nnz(), 8, 8}, at::kDouble);
  const at::Tensor dense = ops::block_sparse_to_dense(values, layout);
  EXPECT_TRUE(at::equal(dense, reference_dense(values, l)));
  // Padding beyond 100 x 130 is dropped, the rest comes back exactly.
  const at::Tensor back = ops::dense_to_block_sparse(dense, layout);
  EXPECT_TRUE(at::equal(ops::block_sparse_to_dense(back, layout), dense));
}


TEST(BlockSparseOpsCpu, RejectsMismatchedArgumentsWithClearMessages) {
  const BlockLayout l = random_layout(70, 45, 16, 0.4, 1);
  const Layout layout = ops::make_layout(l);
  const at::Tensor values = at::randn({l.nnz(), 16, 16});
  auto contains = [](const std::string& message, const std::string& part) {
    return message.find(part) != std::string::npos;
  };
  EXPECT_TRUE(contains(error_of([&] { ops::block_sparse_linear(at::randn({3, 44}), values, layout); }),
                       "pixelfly::block_sparse_linear: x must have last dimension in_features = 45, got shape [3, 44]"));
  EXPECT_TRUE(contains(error_of([&] { ops::block_sparse_linear(at::randn({3, 45}), at::randn({2, 16, 16}), layout); }),
                       "values must have shape (nnz, block, block) = (" + std::to_string(l.nnz()) + ", 16, 16)"));
  EXPECT_TRUE(contains(error_of([&] { ops::block_sparse_linear(at::randn({3, 45}, at::kDouble), values, layout); }),
                       "values has dtype Float but x has dtype Double"));
  EXPECT_TRUE(contains(error_of([&] {
                         ops::block_sparse_linear(at::ones({3, 45}, at::kInt), values.to(at::kInt), layout);
                       }),
                       "CPU supports float32, float64 and bfloat16"));
  EXPECT_TRUE(contains(error_of([&] { ops::block_sparse_linear_grad_input(at::randn({3, 45}), values, layout); }),
                       "grad_y must have last dimension out_features = 70"));
  EXPECT_TRUE(contains(error_of([&] {
                         ops::block_sparse_linear_grad_weight(at::randn({3, 70}), at::randn({4, 45}), layout);
                       }),
                       "grad_y and x must have the same leading shape"));
  EXPECT_TRUE(contains(error_of([&] { ops::block_sparse_linear(at::randn({}), values, layout); }),
                       "x must have at least one dimension"));
  EXPECT_TRUE(contains(error_of([&] { ops::dense_to_block_sparse(at::randn({45, 70}), layout); }),
                       "dense must have shape (out_features, in_features) = (70, 45)"));
}

TEST(BlockSparseOpsCpu, NonContiguousInputsGiveTheSameResult) {
  const BlockLayout l = random_layout(64, 48, 16, 0.5, 6);
  const Layout layout = ops::make_layout(l);
  const at::Tensor values = at::randn({l.nnz(), 16, 16}, at::kDouble);
  const at::Tensor x = at::randn({48, 10}, at::kDouble).t();  // (10, 48), not contiguous
  ASSERT_FALSE(x.is_contiguous());
  EXPECT_LE(relative_error(ops::block_sparse_linear(x, values, layout),
                           x.matmul(reference_dense(values, l).t())), 1e-12);
}

// The layout's tensor cache: built once per key; an undefined tensor from the builder (the CUDA
// operators' answer while a CUDA graph is being captured) is returned but not kept.
TEST(LayoutHandle, CachedTensorsAreBuiltOncePerKeyAndUndefinedOnesAreNotKept) {
  const Layout layout = ops::make_layout(flat_butterfly_layout({64, 64, 4, 1, 16}));
  int builds = 0;
  auto build = [&] {
    ++builds;
    return at::full({1}, builds);
  };
  EXPECT_EQ(layout->cached_tensor("a", build).item<int64_t>(), 1);
  EXPECT_EQ(layout->cached_tensor("a", build).item<int64_t>(), 1);
  EXPECT_EQ(builds, 1);
  EXPECT_FALSE(layout->cached_tensor("b", [] { return at::Tensor(); }).defined());
  EXPECT_EQ(layout->cached_tensor("b", build).item<int64_t>(), 2);
  EXPECT_EQ(builds, 2);
}

}  // namespace
}  // namespace pixelfly
