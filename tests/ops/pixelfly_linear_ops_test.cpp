// pixelfly::pixelfly_linear and the mixed operators against the same layer composed from the
// block-sparse operator and matmul, in float64: forward and the gradient of every input.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "pixelfly/ops/block_sparse_ops.h"
#include "pixelfly/ops/pixelfly_linear_ops.h"
#include "pixelfly/pattern/flat_butterfly.h"
#include "pixelfly/pattern/random_layout.h"

#include "common/error_message.h"

namespace pixelfly {
namespace {

using pixelfly::testing::error_of;

double relative_error(const at::Tensor& out, const at::Tensor& ref) {
  return (out - ref).norm().item<double>() / ref.norm().item<double>();
}

struct Inputs {
  at::Tensor x, values, u, v, logit, bias;
};

Inputs make_inputs(const BlockLayout& l, int64_t rank) {
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  return {at::randn({3, 7, l.in_features()}, f64).requires_grad_(),
          at::randn({l.nnz(), l.block(), l.block()}, f64).requires_grad_(),
          at::randn({l.out_features(), rank}, f64).requires_grad_(),
          at::randn({l.in_features(), rank}, f64).requires_grad_(),
          at::full({}, 0.3, f64).requires_grad_(),
          at::randn({l.out_features()}, f64).requires_grad_()};
}

TEST(PixelflyLinearOp, ForwardAndEveryGradientMatchTheComposedLayer) {
  for (const BlockLayout& l : {flat_butterfly_layout({96, 80, 4, 1, 8}), random_layout(70, 45, 16, 0.4, 2)}) {
    for (bool with_bias : {true, false}) {
      const ops::Layout layout = ops::make_layout(l);
      const Inputs in = make_inputs(l, 5);
      const at::Tensor g = at::randn({3, 7, l.out_features()}, at::kDouble);
      // The operator given gamma = sigmoid(logit), or the logit itself (gamma_is_logit), against
      // the composed layer.
      enum class Run { Composed, Fused, FusedLogit };
      auto run = [&](Run mode) {
        const at::Tensor gamma = at::sigmoid(in.logit);
        const c10::optional<at::Tensor> bias = with_bias ? c10::optional<at::Tensor>(in.bias) : c10::nullopt;
        at::Tensor y;
        if (mode == Run::Fused) {
          y = ops::pixelfly_linear(in.x, in.values, layout, in.u, in.v, gamma, bias);
        } else if (mode == Run::FusedLogit) {
          y = ops::pixelfly_linear(in.x, in.values, layout, in.u, in.v, in.logit, bias, /*gamma_is_logit=*/true);
        } else {
          y = gamma * ops::block_sparse_linear(in.x, in.values, layout) +
              (1 - gamma) * at::matmul(at::matmul(in.x, in.v), in.u.t());
          if (with_bias) y = y + in.bias;
        }
        std::vector<at::Tensor> inputs = {in.x, in.values, in.u, in.v, in.logit};
        if (with_bias) inputs.push_back(in.bias);
        std::vector<at::Tensor> grads = torch::autograd::grad({(y * g).sum()}, inputs);
        grads.insert(grads.begin(), y.detach());
        return grads;
      };
      const auto composed = run(Run::Composed);
      const char* names[] = {"y", "x", "values", "u", "v", "mix logit", "bias"};
      for (Run mode : {Run::Fused, Run::FusedLogit}) {
        const auto fused = run(mode);
        for (size_t i = 0; i < fused.size(); ++i) {
          EXPECT_LE(relative_error(fused[i], composed[i]), 1e-12)
              << names[i] << (with_bias ? " with bias" : "") << (mode == Run::FusedLogit ? ", logit given" : "");
        }
      }
    }
  }
}

TEST(PixelflyLinearOp, MixedOperatorsComputeTheirFormulas) {
  const BlockLayout l = random_layout(64, 48, 16, 0.5, 3);
  const ops::Layout layout = ops::make_layout(l);
  const at::Tensor x = at::randn({9, 48}, at::kDouble), dy = at::randn({9, 64}, at::kDouble);
  const at::Tensor values = at::randn({l.nnz(), 16, 16}, at::kDouble);
  const at::Tensor a = at::randn({9, 8}, at::kDouble), b = at::randn({64, 8}, at::kDouble);
  const at::Tensor bt = at::randn({8, 48}, at::kDouble), bias = at::randn({64}, at::kDouble);
  const at::Tensor scale = at::full({}, 0.7, at::kDouble);
  const at::Tensor w = ops::block_sparse_to_dense(values, layout);
  EXPECT_LE(relative_error(ops::mixed_linear(x, values, layout, scale, a, b, bias), 0.7 * x.matmul(w.t()) + 0.3 * a.matmul(b.t()) + bias),
            1e-12);
  EXPECT_LE(relative_error(ops::mixed_linear_grad_input(dy, values, layout, scale, a, bt), 0.7 * dy.matmul(w) + 0.3 * a.matmul(bt)),
            1e-12);
  // The scale given as its logit: the same results as with sigmoid(logit).
  const at::Tensor logit = at::full({}, -1.3, at::kDouble), s = at::sigmoid(logit);
  EXPECT_LE(relative_error(ops::mixed_linear(x, values, layout, logit, a, b, bias, /*scale_is_logit=*/true),
                           s * x.matmul(w.t()) + (1 - s) * a.matmul(b.t()) + bias),
            1e-12);
  EXPECT_LE(relative_error(ops::mixed_linear_grad_input(dy, values, layout, logit, a, bt, /*scale_is_logit=*/true),
                           s * dy.matmul(w) + (1 - s) * a.matmul(bt)),
            1e-12);
}

// dy^T [x v | 1] as low_rank_grad_products returns it with the ones column (the bias gradient
// last), or dy^T x v.
at::Tensor low_rank_product(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& v, bool ones_column) {
  const at::Tensor product = dy.t().matmul(x.matmul(v));
  return ones_column ? at::cat({product, dy.sum(0).unsqueeze(1)}, 1) : product;
}

TEST(PixelflyLinearOp, LowRankGradProductsComputeTheirFormulas) {
  const at::Tensor x = at::randn({2, 9, 48}, at::kDouble), dy = at::randn({2, 9, 64}, at::kDouble);
  const at::Tensor u = at::randn({64, 5}, at::kDouble), v = at::randn({48, 5}, at::kDouble);
  const at::Tensor projected = x.matmul(v);
  for (bool ones_column : {false, true}) {
    const auto [grad_projected, product] = ops::low_rank_grad_products(dy, u, projected, ones_column);
    EXPECT_EQ(grad_projected.sizes(), (at::IntArrayRef{2, 9, 5}));
    EXPECT_LE(relative_error(grad_projected, dy.matmul(u)), 1e-12);
    EXPECT_EQ(product.scalar_type(), at::kDouble);
    EXPECT_EQ(product.sizes(), (at::IntArrayRef{64, ones_column ? 6 : 5}));
    EXPECT_LE(relative_error(product, low_rank_product(dy.reshape({18, 64}), x.reshape({18, 48}), v, ones_column)),
              1e-12);
  }
  // 16-bit activations: the product comes back in float32.
  const auto half =
      ops::low_rank_grad_products(dy.to(at::kBFloat16), u.to(at::kBFloat16), projected.to(at::kBFloat16), true);
  EXPECT_EQ(std::get<0>(half).scalar_type(), at::kBFloat16);
  EXPECT_EQ(std::get<1>(half).scalar_type(), at::kFloat);
  EXPECT_NE(error_of([&] { ops::low_rank_grad_products(dy, u.t(), projected); })
                .find("u must have shape (out_features, r) = (64, r), got [5, 64]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ops::low_rank_grad_products(dy, u.to(at::kFloat), projected); })
                .find("u must match grad_y's dtype and device"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ops::low_rank_grad_products(dy, u, projected.narrow(1, 0, 8)); }).find("projected"),
            std::string::npos);
}

TEST(PixelflyLinearOp, ParameterGradientsComputeTheirFormulas) {
  const BlockLayout l = random_layout(64, 48, 16, 0.5, 5);
  const ops::Layout layout = ops::make_layout(l);
  const at::Tensor x = at::randn({9, 48}, at::kDouble), dy = at::randn({9, 64}, at::kDouble);
  const at::Tensor values = at::randn({l.nnz(), 16, 16}, at::kDouble);
  const at::Tensor u = at::randn({64, 5}, at::kDouble), v = at::randn({48, 5}, at::kDouble);
  const at::Tensor gamma = at::full({}, 0.7, at::kDouble);
  const at::Tensor dw = ops::block_sparse_linear_grad_weight(dy, x, layout), du = dy.t().matmul(x.matmul(v));
  for (bool bias : {true, false}) {
    const at::Tensor product = low_rank_product(dy, x, v, bias);
    const auto [grad_values, grad_u, grad_v, grad_gamma, grad_bias] =
        ops::pixelfly_linear_grad_params(dy, x, values, layout, u, gamma, product, dy.matmul(u), bias);
    EXPECT_LE(relative_error(grad_values, 0.7 * dw), 1e-12);
    EXPECT_LE(relative_error(grad_u, 0.3 * du), 1e-12);
    EXPECT_LE(relative_error(grad_v, 0.3 * x.t().matmul(dy.matmul(u))), 1e-12);
    EXPECT_EQ(grad_gamma.dim(), 0);
    EXPECT_NEAR(grad_gamma.item<double>(), ((dw * values).sum() - (du * u).sum()).item<double>(), 1e-9);
    EXPECT_EQ(grad_bias.defined(), bias);
    if (bias) {
      EXPECT_LE(relative_error(grad_bias, dy.sum(0)), 1e-12);
    }
    // gamma given as its logit: the mix sigmoid(logit) and the logit's gradient.
    const at::Tensor logit = at::full({}, 0.4, at::kDouble);
    const double g = at::sigmoid(logit).item<double>();
    const auto [logit_values, logit_u, logit_v, grad_logit, logit_bias] = ops::pixelfly_linear_grad_params(
        dy, x, values, layout, u, logit, product, dy.matmul(u), bias, c10::nullopt, /*gamma_is_logit=*/true);
    EXPECT_LE(relative_error(logit_values, g * dw), 1e-12);
    EXPECT_LE(relative_error(logit_u, (1 - g) * du), 1e-12);
    EXPECT_LE(relative_error(logit_v, (1 - g) * x.t().matmul(dy.matmul(u))), 1e-12);
    EXPECT_NEAR(grad_logit.item<double>(), ((dw * values).sum() - (du * u).sum()).item<double>() * g * (1 - g), 1e-9);
  }
  EXPECT_NE(error_of([&] {
              ops::pixelfly_linear_grad_params(dy, x, values, layout, u, gamma, du, dy.matmul(u), true);
            }).find("product must have shape (out_features, w) = (64, w) with w >= r + 1 = 6"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              ops::pixelfly_linear_grad_params(dy, x, values, layout, u, gamma, du.to(at::kFloat), dy.matmul(u), false);
            }).find("product must be Double"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              ops::pixelfly_linear_grad_params(dy, x, values, layout, u, gamma, du, dy, false);
            }).find("grad_projected must have last dimension r = 5"),
            std::string::npos);
}

// dy u, dy^T [x v | 1] and dy^T x on the blocks in one operator (on the CPU composed: not one
// pass here), whose weight sums pixelfly_linear_grad_params then takes instead of computing them;
// with bfloat16 inputs the sums in float32 to float32's precision; a projected of the wrong rank
// and sums of the wrong shape rejected.
TEST(PixelflyLinearOp, GradWeightAndLowRankProductsComputeTheirFormulas) {
  const BlockLayout l = random_layout(64, 48, 16, 0.5, 6);
  const ops::Layout layout = ops::make_layout(l);
  const at::Tensor x = at::randn({3, 3, 48}, at::kDouble), dy = at::randn({3, 3, 64}, at::kDouble);
  const at::Tensor values = at::randn({l.nnz(), 16, 16}, at::kDouble);
  const at::Tensor u = at::randn({64, 5}, at::kDouble), v = at::randn({48, 5}, at::kDouble);
  const at::Tensor gamma = at::full({}, 0.7, at::kDouble);
  const at::Tensor dy_rows = dy.reshape({9, 64}), x_rows = x.reshape({9, 48});
  const at::Tensor dw = ops::block_sparse_linear_grad_weight(dy, x, layout), du = dy_rows.t().matmul(x_rows.matmul(v));
  EXPECT_FALSE(ops::grad_weight_and_low_rank_products_is_one_pass(x, layout, 5));
  for (bool bias : {true, false}) {
    const auto [grad_projected, product, weight_sums] =
        ops::grad_weight_and_low_rank_products(dy, x, layout, u, x.matmul(v), bias);
    EXPECT_LE(relative_error(grad_projected, dy.matmul(u)), 1e-12);
    EXPECT_LE(relative_error(product, low_rank_product(dy_rows, x_rows, v, bias)), 1e-12);
    EXPECT_LE(relative_error(weight_sums, dw), 1e-12);
    const auto [grad_values, grad_u, grad_v, grad_gamma, grad_bias] = ops::pixelfly_linear_grad_params(
        dy, x, values, layout, u, gamma, product, grad_projected, bias, weight_sums * 2);
    EXPECT_LE(relative_error(grad_values, 0.7 * 2 * dw), 1e-12);  // the sums as given, not recomputed
    EXPECT_LE(relative_error(grad_u, 0.3 * du), 1e-12);
    EXPECT_NEAR(grad_gamma.item<double>(), ((2 * dw * values).sum() - (du * u).sum()).item<double>(), 1e-9);
  }
  EXPECT_NE(error_of([&] {
              ops::grad_weight_and_low_rank_products(dy, x, layout, u, x.matmul(v).narrow(-1, 0, 4), false);
            }).find("projected must have last dimension r = 5"),
            std::string::npos);
  // 16-bit inputs: the weight sums in float32 from the inputs' values, not rounded to 16 bits.
  const at::Tensor dy16 = dy.to(at::kBFloat16), x16 = x.to(at::kBFloat16);
  const auto sums16 = std::get<2>(ops::grad_weight_and_low_rank_products(
      dy16, x16, layout, u.to(at::kBFloat16), x16.matmul(v.to(at::kBFloat16))));
  EXPECT_EQ(sums16.scalar_type(), at::kFloat);
  EXPECT_LE(relative_error(sums16, ops::block_sparse_linear_grad_weight(dy16.to(at::kDouble), x16.to(at::kDouble), layout)),
            1e-6);
  const auto [grad_projected, product, weight_sums] = ops::grad_weight_and_low_rank_products(dy, x, layout, u, x.matmul(v));
  EXPECT_NE(error_of([&] {
              ops::pixelfly_linear_grad_params(dy, x, values, layout, u, gamma, product, grad_projected, false,
                                               weight_sums.narrow(0, 1, l.nnz() - 1));
            }).find("grad_weight_sums must be (nnz, b, b)"),
            std::string::npos);
}

// Only the gradients asked for are returned (frozen parameters get none).
TEST(PixelflyLinearOp, FrozenParametersGetNoGradient) {
  const BlockLayout l = flat_butterfly_layout({96, 80, 4, 1, 8});
  const ops::Layout layout = ops::make_layout(l);
  Inputs in = make_inputs(l, 5);
  in.values.requires_grad_(false);
  in.logit.requires_grad_(false);
  const at::Tensor y = ops::pixelfly_linear(in.x, in.values, layout, in.u, in.v, at::sigmoid(in.logit), in.bias);
  y.sum().backward();
  EXPECT_TRUE(in.x.grad().defined() && in.u.grad().defined() && in.v.grad().defined() && in.bias.grad().defined());
  EXPECT_FALSE(in.values.grad().defined());
  EXPECT_FALSE(in.logit.grad().defined());
}

TEST(PixelflyLinearOp, RejectsMismatchedLowRankArguments) {
  const BlockLayout l = random_layout(64, 48, 16, 0.5, 4);
  const ops::Layout layout = ops::make_layout(l);
  const at::Tensor x = at::randn({9, 48}), values = at::randn({l.nnz(), 16, 16});
  EXPECT_NE(error_of([&] { ops::mixed_linear(x, values, layout, at::ones({}), at::randn({9, 8}), at::randn({63, 8}), c10::nullopt); })
                .find("low_rank_b must have shape (64, r) with r = 8"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ops::mixed_linear(x, values, layout, at::ones({2}), at::randn({9, 8}), at::randn({64, 8}), c10::nullopt); })
                .find("scale must be a 0-d floating tensor"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ops::mixed_linear(x, values, layout, at::ones({}), at::randn({8, 8}), at::randn({64, 8}), c10::nullopt); })
                .find("low_rank_a must have the activations' leading shape"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              ops::pixelfly_linear(x, values, layout, at::randn({64, 4}), at::randn({48, 5}), at::ones({}), c10::nullopt);
            }).find("u must be (out_features, r)"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              ops::pixelfly_linear(x, values, layout, at::randn({64, 4}, at::kDouble), at::randn({48, 4}), at::ones({}),
                                   c10::nullopt);
            }).find("pixelfly::pixelfly_linear: u has dtype Double but x has dtype Float; both must match"),
            std::string::npos);
}

// The building blocks have no derivatives: where autograd records, an input that needs a
// gradient stops them with a message naming the argument (rather than gradients silently
// missing); without gradients, or under no_grad, they run.
TEST(PixelflyLinearOp, BuildingBlocksRejectInputsThatNeedGradients) {
  const BlockLayout l = random_layout(64, 48, 16, 0.5, 4);
  const ops::Layout layout = ops::make_layout(l);
  const at::Tensor x = at::randn({9, 48}), values = at::randn({l.nnz(), 16, 16}).requires_grad_();
  const at::Tensor a = at::randn({9, 8}), b = at::randn({64, 8});
  EXPECT_NE(error_of([&] { ops::mixed_linear(x, values, layout, at::ones({}), a, b, c10::nullopt); })
                .find("pixelfly::mixed_linear: argument 'values' requires grad, but this operator has no derivatives"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ops::low_rank_grad_products(at::randn({9, 64}).requires_grad_(), b, a); })
                .find("pixelfly::low_rank_grad_products: argument 'grad_y' requires grad"),
            std::string::npos);
  EXPECT_EQ(ops::mixed_linear(x, values.detach(), layout, at::ones({}), a, b, c10::nullopt).sizes(),
            (std::vector<int64_t>{9, 64}));
  torch::NoGradGuard no_grad;
  EXPECT_EQ(ops::mixed_linear(x, values, layout, at::ones({}), a, b, c10::nullopt).sizes(),
            (std::vector<int64_t>{9, 64}));
}

}  // namespace
}  // namespace pixelfly
