"""The operators and the BlockLayout class from Python: load libpixelfly.so, run forward and
backward through torch.ops.pixelfly, and compare with dense float64 matmul; gradients of
gradients against finite differences."""
import sys

import torch
from torch.autograd import gradcheck, gradgradcheck

torch.ops.load_library(sys.argv[1])
BlockLayout = torch.classes.pixelfly.BlockLayout

layout = BlockLayout.flat_butterfly(256, 96, 8, 2, 16)
assert (layout.out_features(), layout.in_features(), layout.block()) == (256, 96, 16)
assert abs(layout.density() - 0.5) < 1e-12, layout.density()
assert layout.row_ptr().shape == (17,) and layout.col_idx().shape == (layout.nnz(),)

torch.manual_seed(0)
values = torch.randn(layout.nnz(), 16, 16, dtype=torch.float64, requires_grad=True)
x = torch.randn(3, 5, 96, dtype=torch.float64, requires_grad=True)
y = torch.ops.pixelfly.block_sparse_linear(x, values, layout)
assert y.shape == (3, 5, 256)

# Dense weight from the CSR arrays.
dense = torch.zeros(256, 96, dtype=torch.float64)
rp, ci = layout.row_ptr().tolist(), layout.col_idx().tolist()
for r in range(16):
    for i in range(rp[r], rp[r + 1]):
        dense[r * 16:(r + 1) * 16, ci[i] * 16:(ci[i] + 1) * 16] = values[i].detach()
torch.testing.assert_close(y, x.detach() @ dense.t(), rtol=1e-12, atol=1e-12)

g = torch.randn_like(y)
(y * g).sum().backward()
torch.testing.assert_close(x.grad, g @ dense, rtol=1e-12, atol=1e-12)
full = g.reshape(-1, 256).t() @ x.detach().reshape(-1, 96)
for r in range(16):
    for i in range(rp[r], rp[r + 1]):
        torch.testing.assert_close(values.grad[i], full[r * 16:(r + 1) * 16, ci[i] * 16:(ci[i] + 1) * 16])

# The CUDA weight-gradient pieces' width (tile_schedule.h): 192 features where the row groups'
# unions are five or six blocks of 32 (Mixer-B fc1), 256 where they are eight (Mixer-B fc2).
assert BlockLayout.flat_butterfly(3072, 768, 16, 2, 32).gradient_piece_features() == 192
assert BlockLayout.flat_butterfly(768, 3072, 16, 2, 32).gradient_piece_features() == 256
try:
    BlockLayout.flat_butterfly(192, 192, 4, 1, 48).gradient_piece_features()
    raise AssertionError("a block that does not divide the kernels' tile must be rejected")
except RuntimeError as e:
    assert "gradient_piece_features" in str(e) and "block size 48" in str(e), str(e)
# The line kernels' tile width (tile_schedule.h): 192 features both ways where four block-32 lines
# straddle two butterfly cells (Mixer-B fc1), 128 where the cells align (GPT-2-medium fc1) and at
# block 128; with a rank-32 term the width can change (384 x 384 at block 16: wide without, narrow
# with).
assert BlockLayout.flat_butterfly(3072, 768, 16, 2, 32).line_tile_features(False, 0) == 192
assert BlockLayout.flat_butterfly(3072, 768, 16, 2, 32).line_tile_features(True, 0) == 192
assert BlockLayout.flat_butterfly(4096, 1024, 16, 2, 32).line_tile_features(False, 0) == 128
assert BlockLayout.flat_butterfly(4096, 4096, 4, 1, 128).line_tile_features(True, 0) == 128
assert BlockLayout.flat_butterfly(384, 384, 16, 1, 16).line_tile_features(False, 0) == 192
assert BlockLayout.flat_butterfly(384, 384, 16, 1, 16).line_tile_features(False, 32) == 128
try:
    BlockLayout.flat_butterfly(192, 192, 4, 1, 48).line_tile_features(False, 0)
    raise AssertionError("a block that does not divide the kernels' tile must be rejected")
except RuntimeError as e:
    assert "line_tile_features" in str(e) and "block size 48" in str(e), str(e)

mask = torch.zeros(4, 6, dtype=torch.bool)
mask[0, 1] = mask[3, 5] = True
custom = BlockLayout.from_block_mask(64, 96, 16, mask)
assert custom.nnz() == 2 and custom.to_text() == ".X....\n......\n......\n.....X\n"

try:
    torch.ops.pixelfly.block_sparse_linear(torch.randn(2, 95), torch.randn(layout.nnz(), 16, 16), layout)
    raise AssertionError("a wrong input width must be rejected")
except RuntimeError as e:
    assert "x must have last dimension in_features = 96" in str(e), str(e)
# Gradients of gradients (create_graph: gradient penalties, Hessian-vector products): every
# operator with its derivatives, against finite differences in float64.
small = BlockLayout.flat_butterfly(64, 32, 4, 1, 16)
grad = dict(dtype=torch.float64, requires_grad=True)
w = torch.randn(small.nnz(), 16, 16, **grad)
xs, gys = torch.randn(2, 3, 32, **grad), torch.randn(2, 3, 64, **grad)
P = torch.ops.pixelfly
assert gradgradcheck(lambda x, w: P.block_sparse_linear(x, w, small), (xs, w))
assert gradgradcheck(lambda g, w: P.block_sparse_linear_grad_input(g, w, small), (gys, w))
assert gradgradcheck(lambda g, x: P.block_sparse_linear_grad_weight(g, x, small), (gys, xs))
u, v = torch.randn(64, 3, **grad), torch.randn(32, 3, **grad)
gamma, bias = torch.tensor(0.3, **grad), torch.randn(64, **grad)
layer = (xs, w, u, v, gamma, bias)
assert gradcheck(lambda x, w, u, v, g, b: P.pixelfly_linear(x, w, small, u, v, g, b), layer)
assert gradgradcheck(lambda x, w, u, v, g, b: P.pixelfly_linear(x, w, small, u, v, g, b), layer)
assert gradgradcheck(lambda x, w, u, v, g: P.pixelfly_linear(x, w, small, u, v, g, None), layer[:5])
# The mix given as its logit (a keyword argument): gamma = sigmoid(logit) inside the operator.
logit_layer = lambda x, w, u, v, l, b: P.pixelfly_linear(x, w, small, u, v, l, b, gamma_is_logit=True)
assert gradcheck(logit_layer, layer)
assert gradgradcheck(logit_layer, layer)
assert torch.allclose(logit_layer(*layer), P.pixelfly_linear(xs, w, small, u, v, torch.sigmoid(gamma), bias))
print("python ops test passed")
