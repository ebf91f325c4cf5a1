// The CPU tile kernels on their own: every output element written (outputs poisoned with NaN
// first), padding of edge tiles zero in dW, and pack/unpack inverse of each other.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "kernels/cpu/block_sparse_cpu.h"
#include "pixelfly/ops/block_sparse_ops.h"
#include "pixelfly/pattern/flat_butterfly.h"
#include "pixelfly/pattern/random_layout.h"

namespace pixelfly {
namespace {

namespace cpu = kernels::cpu;

TEST(CpuKernels, WriteEveryOutputElementOverPoisonedBuffers) {
  for (const BlockLayout& l : {random_layout(70, 45, 16, 0.4, 11), flat_butterfly_layout({96, 80, 4, 2, 8}),
                               BlockLayout::from_block_mask(40, 24, 8, {1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1})}) {
    const cpu::BlockSparseShape shape = cpu::make_shape(l);
    const ops::Layout layout = ops::make_layout(l);
    const int64_t tokens = 29;
    const at::Tensor x = at::randn({tokens, l.in_features()}, at::kDouble);
    const at::Tensor dy = at::randn({tokens, l.out_features()}, at::kDouble);
    const at::Tensor values = at::randn({l.nnz(), l.block(), l.block()}, at::kDouble);
    const at::Tensor w = ops::block_sparse_to_dense(values, layout);
    at::Tensor packed = at::full({cpu::packed_weight_elements(shape)}, NAN, at::kDouble);
    cpu::pack_tiles<double>(shape, values.data_ptr<double>(), packed.data_ptr<double>());
    ASSERT_FALSE(packed.isnan().any().item<bool>());

    at::Tensor y = at::full({tokens, l.out_features()}, NAN, at::kDouble);
    cpu::forward<double>(shape, tokens, x.data_ptr<double>(), packed.data_ptr<double>(), y.data_ptr<double>());
    EXPECT_TRUE(at::allclose(y, x.matmul(w.t()), 1e-12, 1e-12));

    at::Tensor dx = at::full({tokens, l.in_features()}, NAN, at::kDouble);
    cpu::grad_input<double>(shape, tokens, dy.data_ptr<double>(), packed.data_ptr<double>(), dx.data_ptr<double>());
    EXPECT_TRUE(at::allclose(dx, dy.matmul(w), 1e-12, 1e-12));

    at::Tensor packed_grad = at::full({cpu::packed_weight_elements(shape)}, NAN, at::kDouble);
    at::Tensor grad = at::full({l.nnz(), l.block(), l.block()}, NAN, at::kDouble);
    cpu::grad_weight<double>(shape, tokens, dy.data_ptr<double>(), x.data_ptr<double>(), packed_grad.data_ptr<double>());
    cpu::unpack_tiles<double>(shape, packed_grad.data_ptr<double>(), grad.data_ptr<double>());
    const at::Tensor expected = ops::dense_to_block_sparse(dy.t().matmul(x), layout);
    EXPECT_TRUE(at::allclose(grad, expected, 1e-12, 1e-12));
  }
}

TEST(CpuKernels, UnpackInvertsPack) {
  const BlockLayout l = flat_butterfly_layout({256, 96, 8, 2, 16});
  const cpu::BlockSparseShape shape = cpu::make_shape(l);
  const at::Tensor values = at::randn({l.nnz(), 16, 16});
  at::Tensor packed = at::empty({cpu::packed_weight_elements(shape)});
  at::Tensor back = at::full_like(values, NAN);
  cpu::pack_tiles<float>(shape, values.data_ptr<float>(), packed.data_ptr<float>());
  cpu::unpack_tiles<float>(shape, packed.data_ptr<float>(), back.data_ptr<float>());
  EXPECT_TRUE(at::equal(back, values));
  // The first tile is one dense 128 x 48 matrix: row 17 is block row 1, row 1 of its blocks.
  const at::Tensor tile0 = packed.narrow(0, 0, 128 * 48).view({128, 48});
  const at::Tensor dense = ops::block_sparse_to_dense(values, ops::make_layout(l));
  EXPECT_TRUE(at::equal(tile0, dense.narrow(0, 0, 128).narrow(1, 0, 48)));
}

}  // namespace
}  // namespace pixelfly
