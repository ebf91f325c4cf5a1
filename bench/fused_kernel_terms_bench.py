"""What each term of the layer's fused kernels costs on the GPU: at the paper's MLP shapes (n=16,
k=2, b=32, rank 32), the GPU time of the tensor-core forward and grad_input kernels alone
(torch.profiler, mean of 20 launches after warm-up), first as the plain block-sparse
operator, then with the low-rank K segment and the mix (pixelfly::mixed_linear /
mixed_linear_grad_input), then with the bias, then with x v read as a column slice of an [x v | 1]
buffer, 80-byte rows (pitch 40) and the layer's 96-byte rows (pitch 48), then with a mix above
1/2 (the low-rank term first in the K loop). bf16, random inputs; the difference between two rows
is what that term costs.

    python3 bench/fused_kernel_terms_bench.py build/libpixelfly.so"""
import sys

import torch

from gpu_kernel_times import kernel_times

torch.ops.load_library(sys.argv[1])
BlockLayout = torch.classes.pixelfly.BlockLayout
ops = torch.ops.pixelfly
DT = torch.bfloat16
LAUNCHES = 20


def kernel_us(fn):
    """GPU time per call of the block-sparse kernels (line_group_kernel) that fn launches."""
    return sum(ms for name, ms in kernel_times(fn, LAUNCHES).items() if "line_group" in name) * 1e3


def main():
    torch.manual_seed(0)
    shapes = [("Mixer-B fc1", 768, 3072, 25088), ("Mixer-B fc2", 3072, 768, 25088),
              ("GPT-2-M fc1", 1024, 4096, 8192), ("GPT-2-M fc2", 4096, 1024, 8192)]
    print(f"{'shape':12s} {'kernel':44s} {'us':>8s}")
    for name, d_in, d_out, tokens in shapes:
        layout = BlockLayout.flat_butterfly(d_out, d_in, 16, 2, 32)
        values = torch.randn(layout.nnz(), 32, 32, device="cuda", dtype=DT) * 0.02
        x = torch.randn(tokens, d_in, device="cuda", dtype=DT)
        dy = torch.randn(tokens, d_out, device="cuda", dtype=DT)
        u = torch.randn(d_out, 32, device="cuda", dtype=DT) * 0.02
        v = torch.randn(d_in, 32, device="cuda", dtype=DT) * 0.02
        bias = torch.randn(d_out, device="cuda", dtype=DT)
        xv = x @ v
        # [x v | 1] buffers with rows of 40 and of 48 elements (the layer's), x v in their first 32 columns
        xv_pitch40, xv_pitch48 = (torch.ones(tokens, pitch, device="cuda", dtype=DT) for pitch in (40, 48))
        xv_pitch40[:, :32] = xv
        xv_pitch48[:, :32] = xv
        dyu = dy @ u
        half, above = (torch.tensor(g, device="cuda", dtype=DT) for g in (0.5, 0.7))
        rows = [
            ("Y: block-sparse only", lambda: ops.block_sparse_linear(x, values, layout)),
            ("Y: + low-rank segment and mix 0.5", lambda: ops.mixed_linear(x, values, layout, half, xv, u, None)),
            ("Y: + bias", lambda: ops.mixed_linear(x, values, layout, half, xv, u, bias)),
            ("Y: + x v at pitch 40", lambda: ops.mixed_linear(x, values, layout, half, xv_pitch40[:, :32], u, bias)),
            ("Y: + x v at pitch 48 (the layer)",
             lambda: ops.mixed_linear(x, values, layout, half, xv_pitch48[:, :32], u, bias)),
            ("Y: the layer, mix 0.7", lambda: ops.mixed_linear(x, values, layout, above, xv_pitch48[:, :32], u, bias)),
            ("dX: block-sparse only", lambda: ops.block_sparse_linear_grad_input(dy, values, layout)),
            ("dX: + low-rank segment and mix 0.5", lambda: ops.mixed_linear_grad_input(dy, values, layout, half, dyu, v.t())),
            ("dX: mix 0.7", lambda: ops.mixed_linear_grad_input(dy, values, layout, above, dyu, v.t())),
        ]
        for label, fn in rows:
            print(f"{name:12s} {label:44s} {kernel_us(fn):8.1f}", flush=True)


main()
