// Block-sparse operators on CUDA against the float64 CPU reference: random layouts at every
// supported block size, token counts that are multiples of nothing, every dtype, forward and
// both gradients, with output memory poisoned (NaN) before each call so an unwritten element
// fails. Skipped on machines without a GPU.
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#if defined(PIXELFLY_TORCH_HAS_CUDA)
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <cstdint>
#include <iterator>
#include <utility>
#include <vector>

#if defined(PIXELFLY_TORCH_HAS_CUDA)
#include "kernels/cuda/block_sparse_cuda.h"
#endif
#include "pixelfly/ops/block_sparse_ops.h"
#include "pixelfly/ops/pixelfly_linear_ops.h"
#include "pixelfly/pattern/flat_butterfly.h"
#include "pixelfly/pattern/random_layout.h"
#include "pixelfly/pattern/tile_schedule.h"

#include "common/error_message.h"

namespace pixelfly {
namespace {

using pixelfly::testing::error_of;

#define SKIP_WITHOUT_CUDA()                                            \
  if (!torch::cuda::is_available()) {                                  \
    GTEST_SKIP() << "no CUDA device on this machine";                  \
  }

double relative_error(const at::Tensor& out, const at::Tensor& ref) {
  const at::Tensor o = out.to(at::kCPU, at::kDouble), r = ref.to(at::kCPU, at::kDouble);
  const double diff = (o - r).norm().item<double>();
  return std::isfinite(diff) ? diff / r.norm().item<double>() : INFINITY;
}

// Fills the CUDA caching allocator's free blocks of this size with NaN, so the next
// allocation of `numel` elements of `dtype` most likely gets poisoned memory.
void poison_next_allocation(int64_t numel, at::ScalarType dtype) {
  at::Tensor bait = at::full({std::max<int64_t>(numel, 1)}, NAN, at::TensorOptions(at::kCUDA).dtype(dtype));
  torch::cuda::synchronize();
}

struct Case {
  BlockLayout layout;
  int64_t tokens;
};

// 256 x 256 at block 32 whose blocks all lie in the top-left quadrant: the kernels' second group
// of four block rows (and of four block columns) has no block at all.
BlockLayout empty_second_group_layout() {
  std::vector<uint8_t> mask(64, 0);
  for (int r = 0; r < 4; ++r) {
    mask[r * 8 + r] = 1;
    mask[r * 8 + (r + 1) % 4] = 1;
  }
  return BlockLayout::from_block_mask(256, 256, 32, mask);
}

// Block lines in runs of 192 features (the wide tiles' width) sharing their index lists, two runs
// of blocks per line (runs r and r + 1), `lines` block rows and columns: groups of 128 features
// straddle two runs and take the union of three, so both directions take wide tiles; with
// `lines` not a multiple of the run, the last wide group is partial.
BlockLayout shared_runs_layout(int64_t block, int64_t lines) {
  const int64_t run = kKernelWideTileFeatures / block, runs = (lines + run - 1) / run;
  std::vector<uint8_t> mask(lines * lines, 0);
  for (int64_t r = 0; r < lines; ++r) {
    for (int64_t c = 0; c < lines; ++c) mask[r * lines + c] = c / run == r / run || c / run == (r / run + 1) % runs;
  }
  return BlockLayout::from_block_mask(lines * block, lines * block, block, mask);
}

// Feature counts divisible by 8 take the tensor-core path for float16/bfloat16; the others
// take the plain kernels.
std::vector<Case> cases() {
  return {
      {empty_second_group_layout(), 300},
      {random_layout(384, 640, 16, 0.3, 11), 1001},
      {random_layout(520, 264, 64, 0.4, 12), 77},
      {flat_butterfly_layout({768, 3072, 16, 2, 32}), 300},
      // Block 16 with the weight gradient's X in runs of four columns (cells of 192 features).
      {flat_butterfly_layout({768, 3072, 16, 2, 16}), 211},
      {BlockLayout::from_block_mask(48, 32, 16, {1, 0, 0, 0, 1, 1}), 50},
      {random_layout(200, 150, 16, 0.3, 1), 37},
      {random_layout(333, 257, 32, 0.25, 2), 1001},
      {flat_butterfly_layout({3072, 768, 16, 2, 32}), 130},
      {random_layout(500, 700, 64, 0.2, 3), 77},
      {flat_butterfly_layout({1024, 1024, 8, 2, 128}), 515},
      {random_layout(260, 130, 128, 0.5, 4), 1},
      // Weight-gradient pieces 256 features wide at block 64 (the random block-64 layouts above
      // take 192).
      {flat_butterfly_layout({512, 1024, 8, 2, 64}), 300},
      // Wide (192-feature) tiles at blocks 16 and 64, the last group partial.
      {shared_runs_layout(16, 34), 777},
      {shared_runs_layout(64, 11), 333},
      // Several tiles per thread block whose K loops are longer than the ring (narrow tiles at
      // block 128, wide at 64): a block's walk carries its stages' records from tile to tile.
      {flat_butterfly_layout({1024, 1024, 8, 2, 128}), 9000},
      {shared_runs_layout(64, 11), 9001},
  };
}

// The cases above run the wide tiles at every block size that has them, both ways, as the plain
// operators choose them (rank 0, kernel_line_tile_features; checked here without a GPU).
TEST(BlockSparseOpsCuda, CasesCoverWideTilesAtBlocks16To64) {
  for (const int64_t block : {16, 32, 64}) {
    for (const bool by_columns : {false, true}) {
      bool covered = false;
      for (const Case& c : cases()) {
        covered = covered || (c.layout.block() == block && c.layout.out_features() % 8 == 0 &&
                              c.layout.in_features() % 8 == 0 &&
                              kernel_line_tile_features(c.layout, by_columns) == kKernelWideTileFeatures);
      }
      EXPECT_TRUE(covered) << "block " << block << (by_columns ? " grad_input" : " forward");
    }
  }
}

// ... and the weight-gradient pieces of both widths (tile_schedule.h, gradient_piece_features):
// 192 features at blocks 16, 32 and 64, 256 at blocks 32, 64 and 128.
TEST(BlockSparseOpsCuda, CasesCoverBothGradientPieceWidths) {
  for (const auto& [block, features] :
       {std::pair{int64_t{16}, kNarrowGradientPieceFeatures}, std::pair{int64_t{32}, kNarrowGradientPieceFeatures},
        std::pair{int64_t{64}, kNarrowGradientPieceFeatures}, std::pair{int64_t{32}, kGradientPieceFeatures},
        std::pair{int64_t{64}, kGradientPieceFeatures}, std::pair{int64_t{128}, kGradientPieceFeatures}}) {
    bool covered = false;
    for (const Case& c : cases()) {
      covered = covered || (c.layout.block() == block && c.layout.out_features() % 8 == 0 &&
                            c.layout.in_features() % 8 == 0 &&
                            make_tile_schedule(c.layout).gradient_piece_features == features);
    }
    EXPECT_TRUE(covered) << "block " << block << ", pieces " << features << " wide";
  }
}

// ... and at blocks 16 and 32 the weight gradient's X both in 64-column runs and a block at a time
// (TileSchedule::gradient_columns_in_runs_of_64).
TEST(BlockSparseOpsCuda, CasesCoverGradientColumnsInRunsAndSingleAtBlocks16And32) {
  for (const int64_t block : {16, 32}) {
    for (const bool runs : {true, false}) {
      bool covered = false;
      for (const Case& c : cases()) {
        covered = covered || (c.layout.block() == block && c.layout.out_features() % 8 == 0 &&
                              c.layout.in_features() % 8 == 0 &&
                              make_tile_schedule(c.layout).gradient_columns_in_runs_of_64 == runs);
      }
      EXPECT_TRUE(covered) << "block " << block << (runs ? ", runs" : ", single columns");
    }
  }
}

void check_dtype(at::ScalarType dtype, double tolerance) {
  for (const Case& c : cases()) {
    const BlockLayout& l = c.layout;
    const ops::Layout layout = ops::make_layout(l);
    const auto cuda = at::TensorOptions(at::kCUDA).dtype(dtype);
    const at::Tensor x = at::randn({c.tokens, l.in_features()}, cuda);
    const at::Tensor dy = at::randn({c.tokens, l.out_features()}, cuda);
    const at::Tensor values = at::randn({l.nnz(), l.block(), l.block()}, cuda);
    // float64 CPU reference on the same (rounded) inputs.
    const at::Tensor x64 = x.to(at::kCPU, at::kDouble), dy64 = dy.to(at::kCPU, at::kDouble);
    const at::Tensor w64 = ops::block_sparse_to_dense(values.to(at::kCPU, at::kDouble), layout);
    const std::string name = std::to_string(l.out_features()) + "x" + std::to_string(l.in_features()) + " b" +
                             std::to_string(l.block()) + " T" + std::to_string(c.tokens);

    poison_next_allocation(c.tokens * l.out_features(), dtype);
    const at::Tensor y = ops::block_sparse_linear(x, values, layout);
    EXPECT_LE(relative_error(y, x64.matmul(w64.t())), tolerance) << name << " forward";

    poison_next_allocation(c.tokens * l.in_features(), dtype);
    const at::Tensor dx = ops::block_sparse_linear_grad_input(dy, values, layout);
    EXPECT_LE(relative_error(dx, dy64.matmul(w64)), tolerance) << name << " grad_input";

    poison_next_allocation(values.numel(), dtype);
    const at::Tensor dw = ops::block_sparse_linear_grad_weight(dy, x, layout);
    const at::Tensor dw_ref = ops::dense_to_block_sparse(dy64.t().matmul(x64), layout);
    EXPECT_LE(relative_error(dw, dw_ref), tolerance) << name << " grad_weight";
  }
}

TEST(BlockSparseOpsCuda, Float32MatchesFloat64Reference) {
  SKIP_WITHOUT_CUDA();
  torch::manual_seed(1);
  check_dtype(at::kFloat, 1e-5);
}
TEST(BlockSparseOpsCuda, BFloat16MatchesFloat64Reference) {
  SKIP_WITHOUT_CUDA();
  torch::manual_seed(2);
  check_dtype(at::kBFloat16, 1e-2);
}
TEST(BlockSparseOpsCuda, Float16MatchesFloat64Reference) {
  SKIP_WITHOUT_CUDA();
  torch::manual_seed(3);
  check_dtype(at::kHalf, 1e-2);
}

// Inputs that are contiguous views starting 2 bytes into their storage (the tensor-core
// kernels' copies need 16-byte-aligned bases) give the same results as aligned copies.
TEST(BlockSparseOpsCuda, UnalignedViewsMatchAlignedCopies) {
  SKIP_WITHOUT_CUDA();
  torch::manual_seed(6);
  const BlockLayout l = flat_butterfly_layout({256, 512, 8, 1, 32});
  const ops::Layout layout = ops::make_layout(l);
  const auto cuda = at::TensorOptions(at::kCUDA).dtype(at::kBFloat16);
  auto unaligned = [&](int64_t rows, int64_t cols) {
    return at::randn({rows * cols + 1}, cuda).narrow(0, 1, rows * cols).view({rows, cols});
  };
  const at::Tensor x = unaligned(300, 512), dy = unaligned(300, 256);
  const at::Tensor values = unaligned(l.nnz() * 32, 32).view({l.nnz(), 32, 32});
  ASSERT_NE(reinterpret_cast<uintptr_t>(x.data_ptr()) % 16, 0u);
  const at::Tensor xc = x.clone(), dyc = dy.clone(), vc = values.clone();
  EXPECT_TRUE(at::equal(ops::block_sparse_linear(x, values, layout), ops::block_sparse_linear(xc, vc, layout)));
  EXPECT_TRUE(at::equal(ops::block_sparse_linear_grad_input(dy, values, layout),
                        ops::block_sparse_linear_grad_input(dyc, vc, layout)));
  // The weight gradient sums token splits with float atomics, so its rounding may differ.
  EXPECT_LE(relative_error(ops::block_sparse_linear_grad_weight(dy, x, layout),
                           ops::block_sparse_linear_grad_weight(dyc, xc, layout)),
            1e-2);
}

TEST(BlockSparseOpsCuda, AutogradOnCudaMatchesCpu) {
  SKIP_WITHOUT_CUDA();
  torch::manual_seed(4);
  const BlockLayout l = random_layout(96, 160, 32, 0.4, 5);
  const ops::Layout layout = ops::make_layout(l);
  const at::Tensor x = at::randn({3, 19, 160});
  const at::Tensor values = at::randn({l.nnz(), 32, 32});
  const at::Tensor g = at::randn({3, 19, 96});
  auto grads = [&](const at::Device& device) {
    const at::Tensor xd = x.to(device).detach().requires_grad_(), vd = values.to(device).detach().requires_grad_();
    (ops::block_sparse_linear(xd, vd, layout) * g.to(device)).sum().backward();
    return std::make_pair(xd.grad().cpu(), vd.grad().cpu());
  };
  const auto [gx_cpu, gv_cpu] = grads(at::kCPU);
  const auto [gx_cuda, gv_cuda] = grads(at::kCUDA);
  EXPECT_LE(relative_error(gx_cuda, gx_cpu), 1e-5);
  EXPECT_LE(relative_error(gv_cuda, gv_cpu), 1e-5);
}

// Gradients of gradients (a backward with create_graph, as a gradient penalty or a
// Hessian-vector product takes them) on CUDA against float64 on the CPU: s = sum(r * dL/dx) for
// L = sum(c * y * y), y the layer with every parameter, and s's gradients with respect to x and
// every parameter. The forward runs the fused kernels, the recorded backward the block-sparse
// operators (differentiable to any order) and matmuls; the CPU's second-order gradients are
// checked against finite differences by tests/python/ops_from_python_test.py.
TEST(BlockSparseOpsCuda, SecondOrderGradientsMatchFloat64Reference) {
  SKIP_WITHOUT_CUDA();
  torch::manual_seed(6);
  const BlockLayout l = flat_butterfly_layout({256, 128, 4, 1, 32});
  const ops::Layout layout = ops::make_layout(l);
  const int64_t tokens = 77, rank = 8;
  const at::Tensor x = at::randn({tokens, 128}), values = at::randn({l.nnz(), 32, 32}) * 0.2,
                   u = at::randn({256, rank}) * 0.2, v = at::randn({128, rank}) * 0.2, gamma = at::scalar_tensor(0.3),
                   bias = at::randn({256}), c = at::randn({tokens, 256}), r = at::randn({tokens, 128});
  auto second = [&](at::ScalarType dtype, const at::Device& device) {
    auto leaf = [&](const at::Tensor& t) { return t.to(device, dtype).detach().requires_grad_(); };
    const at::Tensor xd = leaf(x), wd = leaf(values), ud = leaf(u), vd = leaf(v), gd = leaf(gamma), bd = leaf(bias);
    const at::Tensor y = ops::pixelfly_linear(xd, wd, layout, ud, vd, gd, bd);
    const at::Tensor gx =
        torch::autograd::grad({(c.to(device, dtype) * y * y).sum()}, {xd}, {}, /*retain_graph=*/true,
                              /*create_graph=*/true)[0];
    auto grads = torch::autograd::grad({(gx * r.to(device, dtype)).sum()}, {xd, wd, ud, vd, gd, bd});
    for (at::Tensor& g : grads) g = g.to(at::kCPU, at::kDouble);
    return grads;
  };
  const auto reference = second(at::kDouble, at::kCPU);
  const char* names[] = {"x", "values", "u", "v", "gamma", "bias"};
  for (const auto& [dtype, tolerance] : {std::pair{at::kFloat, 1e-4}, std::pair{at::kBFloat16, 3e-2}}) {
    const auto cuda = second(dtype, at::kCUDA);
    for (size_t i = 0; i < cuda.size(); ++i) {
      EXPECT_LE(relative_error(cuda[i], reference[i]), tolerance) << names[i] << " " << c10::toString(dtype);
    }
  }
}

// The fused layer (tensor-core kernels with the low-rank term, mix and bias folded in, the
// parameter gradients' finishing kernel) against float64 on the CPU: output and every gradient,
// bf16 and fp16, with and without bias, the mix logit in the activations' dtype or in float32
// (as under autocast), mixes above and below 1/2 (the two orders of the kernels' K loop), the
// logit given to the operator (gamma_is_logit: the kernels apply the sigmoid, with bias) or its
// sigmoid (without). The mix logit's gradient is a difference of two sums over every output,
// sum(g * s) - sum(g * l), so its error is measured against the size of those sums rather than
// of their difference.
TEST(BlockSparseOpsCuda, FusedPixelflyLinearMatchesFloat64Reference) {
  SKIP_WITHOUT_CUDA();
  torch::manual_seed(31);
  for (at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
    // rank 72: the low-rank K segment takes two pipeline stages, the second one partly filled;
    // rank 31 (block 16, as the planner gives Mixer-B's fc2): the factors padded to rank 32;
    // 384 x 384 at block 16: wide tiles without a low-rank term, narrow ones with rank 32
    // (tile_schedule.h, line_grouping); GPT-2-medium's fc1 and fc2 at block 32: the low-rank term
    // beside the ring in the forward of the first and the grad_input of the second
    // (launch_shape.h, low_rank_beside_pays), at ranks 32 and 24 (zero columns past it).
    for (const auto& [l, rank] : {std::pair{flat_butterfly_layout({3072, 768, 16, 2, 32}), int64_t{32}},
                                  std::pair{random_layout(520, 264, 64, 0.4, 21), int64_t{72}},
                                  std::pair{flat_butterfly_layout({768, 3072, 16, 2, 16}), int64_t{31}},
                                  std::pair{flat_butterfly_layout({384, 384, 16, 1, 16}), int64_t{32}},
                                  std::pair{flat_butterfly_layout({4096, 1024, 16, 2, 32}), int64_t{32}},
                                  std::pair{flat_butterfly_layout({1024, 4096, 16, 2, 32}), int64_t{24}}}) {
      for (const auto& [with_bias, mix_type] : {std::pair{true, dtype}, std::pair{false, at::kFloat}}) {
        const ops::Layout layout = ops::make_layout(l);
        const auto cuda = at::TensorOptions(at::kCUDA).dtype(dtype);
        // 333 tokens, as (9, 37, features) for the block-16 layouts: the layer's x v buffer is
        // then a view of a 3-d product.
        const std::vector<int64_t> lead = l.block() == 16 ? std::vector<int64_t>{9, 37} : std::vector<int64_t>{333};
        auto rows = [&](int64_t features) {
          std::vector<int64_t> sizes = lead;
          sizes.push_back(features);
          return sizes;
        };
        const at::Tensor x = at::randn(rows(l.in_features()), cuda), g = at::randn(rows(l.out_features()), cuda);
        const at::Tensor values = at::randn({l.nnz(), l.block(), l.block()}, cuda) * 0.1;
        const at::Tensor u = at::randn({l.out_features(), rank}, cuda) * 0.1, v = at::randn({l.in_features(), rank}, cuda) * 0.1;
        // sigmoid(0.4) > 1/2 puts the low-rank term first in the kernels' K loop, sigmoid(-0.4) last.
        const at::Tensor logit = at::full({}, with_bias ? 0.4 : -0.4, cuda.dtype(mix_type));
        const at::Tensor bias = at::randn({l.out_features()}, cuda);
        auto run = [&](const at::Device& device, at::ScalarType type) {
          if (device.is_cuda()) {
            // The plain operators first, on the same handle: the layer's calls then find the
            // groupings and tile orders of rank 0 kept beside those of their own rank.
            ops::block_sparse_linear(x.to(type), values.to(type), layout);
            ops::block_sparse_linear_grad_input(g.to(type), values.to(type), layout);
          }
          std::vector<at::Tensor> leaves;
          for (const at::Tensor& t : {x, values, u, v}) leaves.push_back(t.to(device, type).detach().requires_grad_());
          leaves.push_back(logit.to(device, device.is_cuda() ? mix_type : type).detach().requires_grad_());
          if (with_bias) leaves.push_back(bias.to(device, type).detach().requires_grad_());
          // On the GPU the bias is a view at an odd element offset (the kernel copies 16-byte pieces).
          c10::optional<at::Tensor> bias_arg;
          if (with_bias) {
            bias_arg = device.is_cuda() ? at::constant_pad_nd(leaves[5], {1, 0}).narrow(0, 1, l.out_features()) : leaves[5];
            if (device.is_cuda()) {
              EXPECT_NE(reinterpret_cast<uintptr_t>(bias_arg->data_ptr()) % 16, 0u) << "the bias must be misaligned here";
            }
          }
          const bool logit_given = with_bias;
          const at::Tensor y = ops::pixelfly_linear(leaves[0], leaves[1], layout, leaves[2], leaves[3],
                                                    logit_given ? leaves[4] : at::sigmoid(leaves[4]), bias_arg,
                                                    /*gamma_is_logit=*/logit_given);
          std::vector<at::Tensor> grads = torch::autograd::grad({(y * g.to(device, type)).sum()}, leaves);
          grads.insert(grads.begin(), y.detach());
          return grads;
        };
        const auto fast = run(at::kCUDA, dtype), reference = run(at::kCPU, at::kDouble);
        const char* names[] = {"y", "x", "values", "u", "v", "mix logit", "bias"};
        const std::string where = std::string(" ") + c10::toString(dtype) + " " + std::to_string(l.out_features()) +
                                  "x" + std::to_string(l.in_features()) + " b" + std::to_string(l.block()) +
                                  (with_bias ? " with bias" : " without bias") + (lead.size() == 2 ? ", 3-d x" : "");
        for (size_t i = 0; i < fast.size(); ++i) {
          if (i == 5) continue;
          EXPECT_LE(relative_error(fast[i], reference[i]), 2e-2) << names[i] << where;
        }
        EXPECT_EQ(fast[5].scalar_type(), mix_type);
        // d loss / d logit = sigmoid'(logit) * (sum(g * s) - sum(g * l)).
        const at::Tensor x64 = x.to(at::kCPU, at::kDouble), g64 = g.to(at::kCPU, at::kDouble);
        const double sparse_sum = (g64 * ops::block_sparse_linear(x64, values.to(at::kCPU, at::kDouble), layout)).sum().item<double>();
        const double low_rank_sum =
            (g64 * x64.matmul(v.to(at::kCPU, at::kDouble)).matmul(u.to(at::kCPU, at::kDouble).t())).sum().item<double>();
        const double stored_logit = logit.to(at::kDouble).item<double>();  // as rounded to its dtype
        const double slope = std::exp(-stored_logit) / std::pow(1 + std::exp(-stored_logit), 2);
        const double error = std::abs(fast[5].item<double>() - reference[5].item<double>());
        EXPECT_LE(error, 2e-2 * slope * (std::abs(sparse_sum) + std::abs(low_rank_sum))) << "mix logit" << where;
        EXPECT_NEAR(reference[5].item<double>(), slope * (sparse_sum - low_rank_sum),
                    1e-6 * (std::abs(sparse_sum) + std::abs(low_rank_sum)));
      }
    }
  }
}

// Under CUDA autocast the layer's float32 parameters go into the operator uncast (it casts them
// itself) with a rank that is not a multiple of 8 (41, as the planner gives GPT-2 medium) and the
// mix as its float32 logit (as PixelflyLinear passes it): bf16 output, float32 gradients, against
// float64 on the CPU.
TEST(BlockSparseOpsCuda, AutocastWithFloat32ParametersMatchesFloat64Reference) {
  SKIP_WITHOUT_CUDA();
  torch::manual_seed(41);
  const BlockLayout l = random_layout(512, 256, 64, 0.3, 7);
  const ops::Layout layout = ops::make_layout(l);
  const int64_t tokens = 333, rank = 41;
  const auto f32 = at::TensorOptions(at::kCUDA).dtype(at::kFloat);
  const std::vector<at::Tensor> inputs = {at::randn({tokens, l.in_features()}, f32),
                                          at::randn({l.nnz(), l.block(), l.block()}, f32) * 0.1,
                                          at::randn({l.out_features(), rank}, f32) * 0.1,
                                          at::randn({l.in_features(), rank}, f32) * 0.1, at::full({}, 0.3, f32),
                                          at::randn({l.out_features()}, f32)};
  const at::Tensor g = at::randn({tokens, l.out_features()}, f32);
  auto run = [&](const at::Device& device, at::ScalarType type, bool autocast) {
    std::vector<at::Tensor> leaves;
    for (const at::Tensor& t : inputs) leaves.push_back(t.to(device, type).detach().requires_grad_());
    at::Tensor y;
    {
      const bool was_enabled = at::autocast::is_autocast_enabled(at::kCUDA);
      at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
      at::autocast::set_autocast_enabled(at::kCUDA, autocast);
      y = ops::pixelfly_linear(leaves[0], leaves[1], layout, leaves[2], leaves[3], leaves[4], leaves[5],
                               /*gamma_is_logit=*/true);
      at::autocast::set_autocast_enabled(at::kCUDA, was_enabled);
      at::autocast::clear_cache();
    }
    std::vector<at::Tensor> out = torch::autograd::grad({(y.to(type) * g.to(device, type)).sum()}, leaves);
    out.insert(out.begin(), y.detach());
    return out;
  };
  const auto fast = run(at::kCUDA, at::kFloat, true), reference = run(at::kCPU, at::kDouble, false);
  EXPECT_EQ(fast[0].scalar_type(), at::kBFloat16);
  const char* names[] = {"y", "x", "values", "u", "v", "mix logit", "bias"};
  for (size_t i = 0; i < fast.size(); ++i) {
    if (i > 0) {
      EXPECT_EQ(fast[i].scalar_type(), at::kFloat) << names[i];
    }
    EXPECT_LE(relative_error(fast[i], reference[i]), 2e-2) << names[i];
  }
}

// pixelfly_linear_grad_params called directly on CUDA (weight-gradient kernel, with v's product
// in its pass or as one cuBLAS product, the finishing kernel) against the float64 composed
// version, with every output's memory poisoned first: both 16-bit dtypes, the mix in the
// activations' dtype or float32, with and without the bias column (with it, the product a column
// slice of a wider buffer, as low_rank_grad_products returns it), a rank that is not a multiple
// of 8.
TEST(BlockSparseOpsCuda, ParameterGradientsMatchFloat64Reference) {
  SKIP_WITHOUT_CUDA();
  torch::manual_seed(41);
  // Token counts per dtype. On an H200: at 333 tokens the weight gradient is one split, stored
  // straight. At 1500 its float32 sums come out of reductions in five splits for the first
  // layout (24 pieces 256 wide) and the third (24 of 192), out of clusters for the second (6
  // pieces); at 5000 the fourth's 14 splits (6 pieces 256 wide) add into them. Where they do and
  // the rank is a multiple of 8 up to 32, v's gradient x^T (dy u) rides in the weight gradient's
  // pass (the first layout in float16, the third and fourth in bfloat16: pieces 256, 192 and 256
  // wide, ranks 32, 16 and 24, the fourth's inputs ending inside a block column), each warpgroup
  // multiplying one set of x's features; in the fifth (bfloat16) and sixth (float16) two sets
  // each (4 pieces 256 wide at block 64 and 10 pieces 192 wide at block 32 have too few
  // warpgroups for x's 16 and 29 sets one each; 14 and 12 splits at 5000 tokens, so reductions;
  // the sixth's inputs end inside a block column); in the seventh (float16) and eighth
  // (bfloat16) one set each at blocks 128 (a block column spans two sets: 4 pieces, inputs ending
  // inside a block column) and 16 (4 pieces 192 wide), 14 splits each; elsewhere it is cuBLAS's
  // (rank 20, clusters, one split): one product at 333 tokens, at 1500 four over token ranges of
  // 375, whose partial sums the finishing pass adds.
  struct ParameterCase {
    BlockLayout layout;
    int64_t rank, bf16_tokens, f16_tokens, fold_products;
  };
  const ParameterCase cases[] = {{flat_butterfly_layout({768, 3072, 16, 2, 32}), 32, 333, 1500, 1},
                                 {random_layout(520, 264, 64, 0.4, 22), 20, 333, 1500, 1},
                                 {flat_butterfly_layout({3072, 768, 16, 2, 32}), 16, 1500, 333, 1},
                                 {random_layout(520, 264, 32, 0.4, 23), 24, 5000, 333, 1},
                                 {flat_butterfly_layout({256, 1024, 8, 2, 64}), 32, 5000, 333, 2},
                                 {flat_butterfly_layout({128, 1800, 4, 1, 32}), 16, 333, 5000, 2},
                                 {flat_butterfly_layout({256, 500, 4, 2, 128}), 16, 333, 5000, 1},
                                 {flat_butterfly_layout({256, 384, 8, 3, 16}), 24, 5000, 333, 1}};
  for (const ParameterCase& c : cases) {
    ASSERT_EQ(make_tile_schedule(c.layout).gradient_fold_products, c.fold_products)
        << c.layout.out_features() << "x" << c.layout.in_features() << " b" << c.layout.block();
  }
  for (at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
    for (const ParameterCase& c : cases) {
      const BlockLayout& l = c.layout;
      const int64_t rank = c.rank;
      for (const auto& [bias, mix_type] : {std::pair{true, dtype}, std::pair{false, at::kFloat}, std::pair{true, at::kFloat}}) {
        const ops::Layout layout = ops::make_layout(l);
        const auto cuda = at::TensorOptions(at::kCUDA).dtype(dtype);
        const int64_t tokens = dtype == at::kHalf ? c.f16_tokens : c.bf16_tokens;
        const int64_t width = bias ? (rank + 8) / 8 * 8 : rank;
        const at::Tensor x = at::randn({tokens, l.in_features()}, cuda), dy = at::randn({tokens, l.out_features()}, cuda);
        const at::Tensor values = at::randn({l.nnz(), l.block(), l.block()}, cuda) * 0.1;
        const at::Tensor u = at::randn({l.out_features(), rank}, cuda) * 0.1, v = at::randn({l.in_features(), rank}, cuda) * 0.1;
        const at::Tensor gamma = at::full({}, 0.6, cuda.dtype(mix_type));
        at::Tensor projected = x.matmul(v);
        if (bias) projected = at::cat({projected, at::ones({tokens, width - rank}, cuda)}, 1);
        const at::Tensor grad_projected = dy.matmul(u);
        const at::Tensor full_product = dy.to(at::kFloat).t().matmul(projected.to(at::kFloat));
        const at::Tensor product = bias ? full_product.narrow(1, 0, rank + 1) : full_product;
        auto run = [&](const at::Device& device, at::ScalarType type, at::ScalarType gamma_type) {
          auto to = [&](const at::Tensor& t) { return t.to(device, type); };
          const auto out = ops::pixelfly_linear_grad_params(
              to(dy), to(x), to(values), layout, to(u), gamma.to(device, gamma_type),
              product.to(device, type == at::kDouble ? at::kDouble : at::kFloat), to(grad_projected), bias);
          return std::vector<at::Tensor>{std::get<0>(out), std::get<1>(out), std::get<2>(out), std::get<3>(out),
                                         std::get<4>(out)};
        };
        for (const auto& [numel, type] : {std::pair{values.numel(), dtype}, std::pair{u.numel(), dtype},
                                          std::pair{v.numel(), dtype}, std::pair{l.out_features(), dtype},
                                          std::pair{int64_t{1}, mix_type}}) {
          poison_next_allocation(numel, type);
        }
        const auto fast = run(at::kCUDA, dtype, mix_type), reference = run(at::kCPU, at::kDouble, at::kDouble);
        const std::string where = std::string(" ") + c10::toString(dtype) + " " + std::to_string(l.out_features()) +
                                  "x" + std::to_string(l.in_features()) + " b" + std::to_string(l.block()) + " rank " +
                                  std::to_string(rank) + ", " + std::to_string(tokens) + " tokens" +
                                  (bias ? " with bias" : " without bias") + ", mix " + c10::toString(mix_type);
        const char* names[] = {"values", "u", "v", "gamma", "bias"};
        for (size_t i : {0, 1, 2}) EXPECT_LE(relative_error(fast[i], reference[i]), 1e-2) << names[i] << where;
        EXPECT_EQ(fast[4].defined(), bias) << where;
        if (bias) {
          EXPECT_LE(relative_error(fast[4], reference[4]), 1e-2) << "bias" << where;
        }
        ASSERT_EQ(fast[3].scalar_type(), mix_type) << where;
        ASSERT_EQ(fast[3].dim(), 0) << where;
        // grad_gamma = <dW, W> - <dU, u>: its error against the size of the two sums.
        const at::Tensor values64 = values.to(at::kCPU, at::kDouble), u64 = u.to(at::kCPU, at::kDouble);
        const double scale = std::abs((reference[0] / 0.6 * values64).sum().item<double>()) +
                             std::abs((reference[1] / 0.4 * u64).sum().item<double>());
        EXPECT_LE(std::abs(fast[3].item<double>() - reference[3].item<double>()), 1e-2 * scale) << "gamma" << where;
      }
    }
  }
}

// grad_weight_and_low_rank_products on CUDA against float64, outputs poisoned first, then
// pixelfly_linear_grad_params taking its weight sums and mixed_linear_grad_input its dy u. The
// layouts' row groups are each one weight-gradient piece 192 wide, so on Hopper the weight-gradient
// kernel computes dy u and dy^T [x v | 1] from its own stages of dy (the query says so): Mixer-B's
// and GPT-2-medium's fc1 at block 32, and a small layout whose last row group is one row (the
// second warpgroup's dy box not loaded at blocks 16 and 32, and at 64 a last group of 64 features),
// at blocks 16, 32 and 64; both 16-bit dtypes, ranks 32, 24 and 8 (u's and x v's boxes zero past
// the rank), with and without the ones column, token counts that are multiples of nothing (a last
// stage past the tokens), the token splits adding into float32 sums; 2, 3, 24 and 32 pieces, and
// token counts whose last split is short (1100 tokens at GPT-2-medium's fc1: four splits of 320,
// the last of three steps; 1300 at Mixer-B's: five of 320, the last of one). v's gradient there is
// cuBLAS's, one product at the odd token counts, four over token ranges at 1100 and 1300, and
// eight, as at the paper's token counts, at 2056 (ranges of 257).
TEST(BlockSparseOpsCuda, GradWeightAndLowRankProductsMatchFloat64Reference) {
  SKIP_WITHOUT_CUDA();
  torch::manual_seed(53);
#if defined(PIXELFLY_TORCH_HAS_CUDA)
  const bool hopper = at::cuda::getCurrentDeviceProperties()->major == 9;
#else
  const bool hopper = false;
#endif
  struct OnePassCase {
    BlockLayout layout;
    int64_t rank, tokens;
    bool ones;
    at::ScalarType dtype;
  };
  auto small = [](int64_t block, int64_t full_groups = 1) {
    // 128 / block x full_groups + 1 block rows by 3 block columns: full row groups and a last one
    // of one row.
    const int64_t rows = full_groups * 128 / block + 1;
    std::vector<uint8_t> mask(rows * 3, 0);
    for (int64_t r = 0; r < rows; ++r) mask[r * 3 + r % 3] = 1, mask[r * 3 + (r + 1) % 3] = r % 2;
    return BlockLayout::from_block_mask(rows * block, 3 * block, block, mask);
  };
  const OnePassCase cases[] = {{flat_butterfly_layout({4096, 1024, 16, 2, 32}), 32, 2501, true, at::kBFloat16},
                               {flat_butterfly_layout({3072, 768, 16, 2, 32}), 24, 3001, false, at::kHalf},
                               {small(32), 32, 5003, true, at::kHalf},
                               {small(16), 8, 4099, true, at::kBFloat16},
                               {small(64), 32, 4099, false, at::kBFloat16},
                               {small(32, 2), 16, 4097, true, at::kBFloat16},
                               {flat_butterfly_layout({4096, 1024, 16, 2, 32}), 32, 1100, true, at::kHalf},
                               {flat_butterfly_layout({3072, 768, 16, 2, 32}), 32, 1300, false, at::kBFloat16},
                               {flat_butterfly_layout({3072, 768, 16, 2, 32}), 32, 2056, true, at::kBFloat16}};
  for (const OnePassCase& c : cases) {
    const BlockLayout& l = c.layout;
    ASSERT_TRUE(make_tile_schedule(l).gradient_pieces_cover_rows_once);
    const ops::Layout layout = ops::make_layout(l);
    const auto cuda = at::TensorOptions(at::kCUDA).dtype(c.dtype);
    const at::Tensor x = at::randn({c.tokens, l.in_features()}, cuda), dy = at::randn({c.tokens, l.out_features()}, cuda);
    const at::Tensor values = at::randn({l.nnz(), l.block(), l.block()}, cuda) * 0.1;
    const at::Tensor u = at::randn({l.out_features(), c.rank}, cuda) * 0.1, v = at::randn({l.in_features(), c.rank}, cuda) * 0.1;
    const at::Tensor projected = x.matmul(v);
    const std::string where = std::string(" ") + c10::toString(c.dtype) + " " + std::to_string(l.out_features()) + "x" +
                              std::to_string(l.in_features()) + " b" + std::to_string(l.block()) + " rank " +
                              std::to_string(c.rank) + ", " + std::to_string(c.tokens) + " tokens" +
                              (c.ones ? " with the ones column" : "");
    if (hopper) {
      EXPECT_TRUE(ops::grad_weight_and_low_rank_products_is_one_pass(x, layout, c.rank)) << where;
    }
    auto f64 = [](const at::Tensor& t) { return t.to(at::kCPU, at::kDouble); };
    poison_next_allocation(c.tokens * 32, c.dtype);
    const int64_t sums = l.nnz() * l.block() * l.block();
    poison_next_allocation(sums + c.tokens * 32 + l.out_features() * (c.rank + (c.ones ? 8 : 0)), at::kFloat);
    const auto [grad_projected, product, weight_sums] =
        ops::grad_weight_and_low_rank_products(dy, x, layout, u, projected, c.ones);
    const auto [grad_projected64, product64, weight_sums64] =
        ops::grad_weight_and_low_rank_products(f64(dy), f64(x), layout, f64(u), f64(projected), c.ones);
    ASSERT_EQ(grad_projected.sizes(), (at::IntArrayRef{c.tokens, c.rank})) << where;
    ASSERT_EQ(product.sizes(), (at::IntArrayRef{l.out_features(), c.rank + (c.ones ? 1 : 0)})) << where;
    ASSERT_EQ(weight_sums.scalar_type(), at::kFloat) << where;
    EXPECT_LE(relative_error(grad_projected, grad_projected64), 1e-2) << "dy u" << where;
    EXPECT_LE(relative_error(product.narrow(1, 0, c.rank), product64.narrow(1, 0, c.rank)), 1e-3) << "dy^T x v" << where;
    if (c.ones) {
      EXPECT_LE(relative_error(product.select(1, c.rank), product64.select(1, c.rank)), 1e-3) << "ones column" << where;
    }
    EXPECT_LE(relative_error(weight_sums, weight_sums64), 1e-3) << "dy^T x" << where;
    // The parameter gradients from these sums, and dx from this dy u (a column slice of a wider buffer).
    const at::Tensor gamma = at::full({}, 0.6, cuda.dtype(at::kFloat));
    const auto fast = ops::pixelfly_linear_grad_params(dy, x, values, layout, u, gamma, product, grad_projected, c.ones,
                                                       weight_sums);
    const auto reference = ops::pixelfly_linear_grad_params(f64(dy), f64(x), f64(values), layout, f64(u), f64(gamma),
                                                            product64, grad_projected64, c.ones, weight_sums64);
    EXPECT_LE(relative_error(std::get<0>(fast), std::get<0>(reference)), 1e-2) << "values" << where;
    EXPECT_LE(relative_error(std::get<1>(fast), std::get<1>(reference)), 1e-2) << "u" << where;
    EXPECT_LE(relative_error(std::get<2>(fast), std::get<2>(reference)), 1e-2) << "v" << where;
    const at::Tensor dx = ops::mixed_linear_grad_input(dy, values, layout, gamma.to(c.dtype), grad_projected, v.t());
    const at::Tensor dx64 =
        ops::mixed_linear_grad_input(f64(dy), f64(values), layout, f64(gamma), grad_projected64, f64(v).t());
    EXPECT_LE(relative_error(dx, dx64), 1e-2) << "dx" << where;
  }
  // Where it is not one pass (50 tokens at Mixer-B's fc1: one token split, or a GPU other than
  // Hopper), the weight sums are float32 all the same, from the inputs' values.
  const BlockLayout l = flat_butterfly_layout({3072, 768, 16, 2, 32});
  const ops::Layout layout = ops::make_layout(l);
  const auto cuda = at::TensorOptions(at::kCUDA).dtype(at::kBFloat16);
  const at::Tensor x = at::randn({50, 768}, cuda), dy = at::randn({50, 3072}, cuda);
  const at::Tensor u = at::randn({3072, 32}, cuda) * 0.1, projected = x.matmul(at::randn({768, 32}, cuda) * 0.1);
  EXPECT_FALSE(ops::grad_weight_and_low_rank_products_is_one_pass(x, layout, 32));
  const auto [grad_projected, product, weight_sums] = ops::grad_weight_and_low_rank_products(dy, x, layout, u, projected, true);
  auto f64 = [](const at::Tensor& t) { return t.to(at::kCPU, at::kDouble); };
  ASSERT_EQ(weight_sums.scalar_type(), at::kFloat);
  EXPECT_LE(relative_error(weight_sums, ops::block_sparse_linear_grad_weight(f64(dy), f64(x), layout)), 1e-5);
  EXPECT_LE(relative_error(grad_projected, f64(dy).matmul(f64(u))), 1e-2);
}

// low_rank_grad_products on CUDA against float64: both 16-bit dtypes; feature counts that are
// and are not multiples of the kernel's 64-feature chunks; one split of the features (the block
// writes dy u itself) and several (partial sums meet in float32, then a small pass rounds them);
// with the ones column (made in the kernel's registers) and without; the largest rank the kernel
// takes with and without it, token counts that are multiples of nothing, a 3-d gradient, ranks
// the kernel does not take and a projected wider than u (cuBLAS); projected contiguous for the
// first two shapes and a column slice of a wider buffer (as the layer's may be) for the others;
// and, last, token counts at which the kernel's blocks take several token tiles each (u's rows
// kept from the first, the sums carried over the tiles in shared memory, the last tile's
// reductions), with several splits and with one. grad_projected's memory is poisoned first.
TEST(BlockSparseOpsCuda, LowRankGradProductsMatchFloat64Reference) {
  SKIP_WITHOUT_CUDA();
  torch::manual_seed(43);
  struct Shape {
    int64_t out, rank, width, tokens;  // width: projected's
    bool ones;
  };
  const Shape shapes[] = {{3072, 32, 32, 1001, true},  {520, 32, 32, 77, true},    {136, 40, 40, 300, false},
                          {200, 56, 56, 96, true},     {4096, 16, 16, 2049, true}, {1000, 8, 8, 129, false},
                          {768, 20, 20, 333, true},    {264, 64, 64, 65, true},    {136, 32, 40, 300, true},
                          {1000, 32, 32, 40000, true}, {200, 8, 8, 30001, true},   {64, 16, 16, 50000, true}};
  for (at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
    for (size_t i = 0; i < std::size(shapes); ++i) {
      const Shape& s = shapes[i];
      const auto cuda = at::TensorOptions(at::kCUDA).dtype(dtype);
      const std::vector<int64_t> leading = s.tokens % 2 == 0 ? std::vector<int64_t>{2, s.tokens / 2}
                                                             : std::vector<int64_t>{s.tokens};
      auto rows = [&](int64_t features) {
        std::vector<int64_t> sizes = leading;
        sizes.push_back(features);
        return sizes;
      };
      const at::Tensor dy = at::randn(rows(s.out), cuda), u = at::randn({s.out, s.rank}, cuda) * 0.1;
      const int64_t pitch = i < 2 ? s.width : (s.width + 16) / 16 * 16;
      const at::Tensor projected = at::randn(rows(pitch), cuda).narrow(-1, 0, s.width);
      poison_next_allocation(s.tokens * s.rank, dtype);
      const auto [grad_projected, product] = ops::low_rank_grad_products(dy, u, projected, s.ones);
      const std::string where = std::string(" ") + c10::toString(dtype) + " out " + std::to_string(s.out) + " rank " +
                                std::to_string(s.rank) + " width " + std::to_string(s.width) + " tokens " +
                                std::to_string(s.tokens) + " pitch " + std::to_string(pitch) +
                                (s.ones ? " ones" : "");
      ASSERT_EQ(grad_projected.sizes(), at::IntArrayRef(rows(s.rank))) << where;
      ASSERT_EQ(grad_projected.scalar_type(), dtype) << where;
      ASSERT_EQ(product.sizes(), (at::IntArrayRef{s.out, s.width + (s.ones ? 1 : 0)})) << where;
      ASSERT_EQ(product.scalar_type(), at::kFloat) << where;
      const at::Tensor dy64 = dy.to(at::kCPU, at::kDouble).reshape({s.tokens, s.out});
      const at::Tensor p64 = projected.to(at::kCPU, at::kDouble).reshape({s.tokens, s.width});
      EXPECT_LE(relative_error(grad_projected.reshape({s.tokens, s.rank}), dy64.matmul(u.to(at::kCPU, at::kDouble))),
                1e-2)
          << "grad_projected" << where;
      EXPECT_LE(relative_error(product.narrow(1, 0, s.width), dy64.t().matmul(p64)), 1e-2) << "product" << where;
      if (s.ones) {  // the ones column: the bias gradient, sum of dy over the tokens, in float32
        EXPECT_LE(relative_error(product.select(1, s.width), dy64.sum(0)), 1e-3) << "ones column" << where;
      }
    }
  }
}

// The fused operators with the low-rank term in the ring and beside it (launch_shape.h,
// low_rank_beside_pays: GPT-2-medium's fc1 forward and fc2 grad_input at block 32 take it beside,
// Mixer-B's fc1 forward keeps it in the ring) against their float64 formulas, bf16, at 1300 tokens
// (some blocks of the persistent grid take two tiles: the low-rank operands copied into the output
// buffer after the tile before's stores), with mixes 0.7, 0 and 1 (the accumulators rescaled by
// g / (1 - g) with 1 - g clamped at 2^-24, so g = 1 adds 2^-24 of the low-rank term), and
// grad_input's b both as (r, in) rows and as the transposed view of (in, r) rows (read in place
// beside the ring). Outputs poisoned first. Small enough for racecheck
// (scripts/gpu_kernel_check.sh).
TEST(BlockSparseOpsCuda, MixedOperatorsWithTheLowRankTermInAndBesideTheRing) {
  SKIP_WITHOUT_CUDA();
  torch::manual_seed(47);
  const int64_t tokens = 1300, rank = 32;
  const auto cuda = at::TensorOptions(at::kCUDA).dtype(at::kBFloat16);
  for (const FlatButterflyParams& p : {FlatButterflyParams{4096, 1024, 16, 2, 32},
                                       FlatButterflyParams{1024, 4096, 16, 2, 32},
                                       FlatButterflyParams{3072, 768, 16, 2, 32}}) {
    const BlockLayout l = flat_butterfly_layout(p);
    const ops::Layout layout = ops::make_layout(l);
    const at::Tensor x = at::randn({tokens, l.in_features()}, cuda), dy = at::randn({tokens, l.out_features()}, cuda);
    const at::Tensor values = at::randn({l.nnz(), 32, 32}, cuda) * 0.1, bias = at::randn({l.out_features()}, cuda);
    const at::Tensor a = at::randn({tokens, rank}, cuda), u = at::randn({l.out_features(), rank}, cuda) * 0.1;
    const at::Tensor v = at::randn({l.in_features(), rank}, cuda) * 0.1, v_t = v.t().contiguous();
    auto f64 = [](const at::Tensor& t) { return t.to(at::kCPU, at::kDouble); };
    const at::Tensor sparse_y = ops::block_sparse_linear(f64(x), f64(values), layout);
    const at::Tensor sparse_dx = ops::block_sparse_linear_grad_input(f64(dy), f64(values), layout);
    for (const double mix : {0.7, 0.0, 1.0}) {
      const at::Tensor scale = at::full({}, mix, cuda);
      const double g = scale.item<double>();  // as rounded to bf16
      const std::string where = " " + std::to_string(l.out_features()) + "x" + std::to_string(l.in_features()) +
                                " mix " + std::to_string(g);
      poison_next_allocation(tokens * l.out_features(), at::kBFloat16);
      const at::Tensor y = ops::mixed_linear(x, values, layout, scale, a, u, bias);
      EXPECT_LE(relative_error(y, g * sparse_y + (1 - g) * f64(a).matmul(f64(u).t()) + f64(bias)), 1e-2) << "y" << where;
      const at::Tensor dx_ref = g * sparse_dx + (1 - g) * f64(a).matmul(f64(v_t));
      for (const at::Tensor& b : {v_t, v.t()}) {
        poison_next_allocation(tokens * l.in_features(), at::kBFloat16);
        const at::Tensor dx = ops::mixed_linear_grad_input(dy, values, layout, scale, a, b);
        EXPECT_LE(relative_error(dx, dx_ref), 1e-2) << "dx" << where << (b.is_contiguous() ? " b rows" : " b view");
      }
    }
  }
}

#if defined(PIXELFLY_TORCH_HAS_CUDA)
// The rounding pass that ends the kernels summing in float32 across blocks
// (kernels::cuda::round_to_storage) against LibTorch's rounding, element for element: four at a
// time where both ends are aligned for it (a count that is not a multiple of four leaves a tail
// of single elements), one at a time where either is not, the output poisoned first; both 16-bit
// types; more elements than one step of the grid covers.
TEST(BlockSparseOpsCuda, RoundToStorageMatchesTorchRounding) {
  SKIP_WITHOUT_CUDA();
  torch::manual_seed(45);
  const at::Tensor sums = at::randn({3 * 1024 * 1024 + 7}, at::TensorOptions(at::kCUDA)) * 1000;
  struct Case {
    int64_t elements, in_offset, out_offset;
  };
  const Case cases[] = {{803 * 1024, 0, 0}, {3 * 1024 * 1024 + 3, 0, 0}, {1001, 1, 0}, {4096, 0, 1}, {5, 0, 0}};
  for (at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
    for (const Case& c : cases) {
      const at::Tensor in = sums.narrow(0, c.in_offset, c.elements);
      at::Tensor out = at::full({c.elements + 1}, NAN, at::TensorOptions(at::kCUDA).dtype(dtype));
      const auto kind = dtype == at::kBFloat16 ? kernels::cuda::ScalarKind::BFloat16 : kernels::cuda::ScalarKind::Float16;
      ASSERT_EQ(kernels::cuda::round_to_storage(kind, in.data_ptr<float>(), out.narrow(0, c.out_offset, c.elements).data_ptr(),
                                                c.elements, at::cuda::getCurrentCUDAStream()),
                cudaSuccess);
      const std::string where = std::string(" ") + c10::toString(dtype) + " elements " + std::to_string(c.elements) +
                                " offsets " + std::to_string(c.in_offset) + ", " + std::to_string(c.out_offset);
      EXPECT_TRUE(out.narrow(0, c.out_offset, c.elements).to(at::kFloat).equal(in.to(dtype).to(at::kFloat))) << where;
      EXPECT_TRUE(out.narrow(0, c.out_offset == 0 ? c.elements : 0, 1).isnan().item<bool>()) << "past the end" << where;
    }
  }
}

// The weight gradient over token counts that split its reduction over blocks. On an H200 (132
// multiprocessors; 30 clusters of 4 blocks, 22 of 5 and 15 of 7 at once) the splits of each
// piece run as one thread-block cluster, summed in shared memory and stored once, in the first,
// second, fourth and fifth cases (11 pieces 192 features wide in 4 and 7 splits, 16 of 256 in
// 5, Mixer-B fc1's 24 of 192 in 4); the third (24 pieces of 256 in 5 splits: a second wave of
// clusters), the sixth (24 pieces of 192 in 5 splits, a second wave of clusters, as Mixer-B fc1
// at 25 088 tokens), the seventh (6 pieces of 192 in 13) and the last four (one to three pieces in
// 14-22 splits, at blocks 16, 32, 64 and 128) add into a float32 buffer and round it.
// The output's memory is poisoned first, so an element no block stores fails.
TEST(BlockSparseOpsCuda, GradWeightOverTokenSplitsMatchesFloat64Reference) {
  SKIP_WITHOUT_CUDA();
  torch::manual_seed(43);
  const std::vector<Case> split_cases = {
      {random_layout(384, 640, 16, 0.3, 11), 1100},
      {random_layout(384, 640, 16, 0.3, 11), 2000},
      {flat_butterfly_layout({768, 3072, 16, 2, 32}), 1500},
      {flat_butterfly_layout({1024, 1024, 8, 2, 128}), 1333},
      {flat_butterfly_layout({3072, 768, 16, 2, 32}), 1100},
      {flat_butterfly_layout({3072, 768, 16, 2, 32}), 4133},
      {random_layout(520, 264, 64, 0.4, 12), 4133},
      // One to three pieces and thousands of tokens: more splits than a cluster takes, so every
      // block adds its sums by tensor reductions, at each block size (features past the blocks).
      {random_layout(120, 250, 16, 0.4, 13), 6001},
      {random_layout(160, 288, 32, 0.4, 14), 6007},
      {random_layout(190, 320, 64, 0.5, 15), 5003},
      {random_layout(256, 300, 128, 0.5, 16), 7001},
  };
  for (at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
    for (const Case& c : split_cases) {
      const BlockLayout& l = c.layout;
      const ops::Layout layout = ops::make_layout(l);
      const auto cuda = at::TensorOptions(at::kCUDA).dtype(dtype);
      const at::Tensor x = at::randn({c.tokens, l.in_features()}, cuda);
      const at::Tensor dy = at::randn({c.tokens, l.out_features()}, cuda);
      poison_next_allocation(l.nnz() * l.block() * l.block(), dtype);
      const at::Tensor dw = ops::block_sparse_linear_grad_weight(dy, x, layout);
      const at::Tensor dw_ref = ops::dense_to_block_sparse(
          dy.to(at::kCPU, at::kDouble).t().matmul(x.to(at::kCPU, at::kDouble)), layout);
      EXPECT_LE(relative_error(dw, dw_ref), 1e-2)
          << c10::toString(dtype) << " " << l.out_features() << "x" << l.in_features() << " b" << l.block() << " T"
          << c.tokens;
    }
  }
}

// More tiles than an H200 runs blocks (Mixer-B fc2's layout: 6 groups, two of them twice as long,
// by 23 and 24 token tiles), so that blocks take several tiles each: in the tile order built on
// a token count's first call (eager, then inside a CUDA graph), and round-robin where that first
// call is captured into the graph (the order cannot be copied to the device during a capture).
// Forward and grad_input, captured outputs poisoned before the replay.
TEST(BlockSparseOpsCuda, ManyTilesPerBlockEagerAndUnderGraphCapture) {
  SKIP_WITHOUT_CUDA();
  torch::manual_seed(41);
  const ops::Layout layout = ops::make_layout(flat_butterfly_layout({768, 3072, 16, 2, 32}));
  const auto cuda = at::TensorOptions(at::kCUDA).dtype(at::kBFloat16);
  const at::Tensor values = at::randn({layout->nnz(), 32, 32}, cuda) * 0.1;
  const at::Tensor x_seen = at::randn({5905, 3072}, cuda), x_new = at::randn({5650, 3072}, cuda);
  const at::Tensor dy_new = at::randn({5650, 768}, cuda);
  const at::Tensor values64 = values.to(at::kCPU, at::kDouble);
  const at::Tensor eager = ops::block_sparse_linear(x_seen, values, layout);  // builds its tile order
  const at::Tensor y_seen_ref = ops::block_sparse_linear(x_seen.to(at::kCPU, at::kDouble), values64, layout);
  EXPECT_LT(relative_error(eager, y_seen_ref), 1e-2);

  at::cuda::CUDAGraph graph;
  at::Tensor y_seen, y_new, dx_new;
  {
    const c10::cuda::CUDAStreamGuard on_side_stream(c10::cuda::getStreamFromPool());
    graph.capture_begin();
    y_seen = ops::block_sparse_linear(x_seen, values, layout);
    y_new = ops::block_sparse_linear(x_new, values, layout);
    dx_new = ops::block_sparse_linear_grad_input(dy_new, values, layout);
    graph.capture_end();
  }
  for (at::Tensor t : {y_seen, y_new, dx_new}) t.fill_(NAN);
  graph.replay();
  torch::cuda::synchronize();
  EXPECT_LT(relative_error(y_seen, y_seen_ref), 1e-2);
  EXPECT_LT(relative_error(y_new, ops::block_sparse_linear(x_new.to(at::kCPU, at::kDouble), values64, layout)), 1e-2);
  EXPECT_LT(relative_error(dx_new, ops::block_sparse_linear_grad_input(dy_new.to(at::kCPU, at::kDouble), values64, layout)),
            1e-2);
}

// The layer's backward runs its dx pass and its parameters' pass on two streams (side_stream.h):
// a CUDA graph that captures a whole forward + backward takes the fork and the join, and its
// replay gives what the eager step gave.
TEST(BlockSparseOpsCuda, FusedPixelflyLinearStepUnderGraphCaptureMatchesEager) {
  SKIP_WITHOUT_CUDA();
  torch::manual_seed(43);
  const BlockLayout l = flat_butterfly_layout({1024, 4096, 16, 2, 32});
  const ops::Layout layout = ops::make_layout(l);
  const auto cuda = at::TensorOptions(at::kCUDA).dtype(at::kBFloat16);
  const at::Tensor g = at::randn({777, l.out_features()}, cuda);
  std::vector<at::Tensor> leaves;  // x, values, u, v, the mix's logit, bias
  for (const at::Tensor& t : {at::randn({777, l.in_features()}, cuda), at::randn({l.nnz(), 32, 32}, cuda) * 0.1,
                              at::randn({l.out_features(), 32}, cuda) * 0.1, at::randn({l.in_features(), 32}, cuda) * 0.1,
                              at::full({}, 0.3, cuda), at::randn({l.out_features()}, cuda)}) {
    leaves.push_back(t.detach().requires_grad_());
  }
  auto step = [&] {
    const at::Tensor y = ops::pixelfly_linear(leaves[0], leaves[1], layout, leaves[2], leaves[3], leaves[4],
                                              leaves[5], /*gamma_is_logit=*/true);
    std::vector<at::Tensor> out = torch::autograd::grad({(y * g).sum()}, leaves);
    out.insert(out.begin(), y.detach());
    return out;
  };
  const std::vector<at::Tensor> eager = step();
  at::cuda::CUDAGraph graph;
  std::vector<at::Tensor> replayed;
  {
    const c10::cuda::CUDAStreamGuard on_side_stream(c10::cuda::getStreamFromPool());
    step();  // warm-up on the capturing stream
    graph.capture_begin();
    replayed = step();
    graph.capture_end();
  }
  for (at::Tensor& t : replayed) t.fill_(NAN);
  graph.replay();
  torch::cuda::synchronize();
  const char* names[] = {"y", "x", "values", "u", "v", "mix logit", "bias"};
  ASSERT_EQ(replayed.size(), eager.size());
  for (size_t i = 0; i < eager.size(); ++i) {
    EXPECT_LT(relative_error(replayed[i], eager[i]), 1e-2) << names[i];
  }
}
#endif

TEST(BlockSparseOpsCuda, RejectsUnsupportedBlockAndDtype) {
  SKIP_WITHOUT_CUDA();
  const ops::Layout layout = ops::make_layout(random_layout(64, 64, 8, 0.5, 6));
  const auto cuda = at::TensorOptions(at::kCUDA);
  EXPECT_NE(error_of([&] {
              ops::block_sparse_linear(at::randn({4, 64}, cuda), at::randn({layout->nnz(), 8, 8}, cuda), layout);
            }).find("block 8 is not supported on CUDA"),
            std::string::npos);
  const ops::Layout ok = ops::make_layout(random_layout(64, 64, 16, 0.5, 7));
  EXPECT_NE(error_of([&] {
              ops::block_sparse_linear(at::randn({4, 64}, cuda.dtype(at::kDouble)),
                                       at::randn({ok->nnz(), 16, 16}, cuda.dtype(at::kDouble)), ok);
            }).find("CUDA supports float32, float16 and bfloat16"),
            std::string::npos);
}

}  // namespace
}  // namespace pixelfly
