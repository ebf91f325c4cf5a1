"""Runs each of pixelfly's three block-sparse CUDA operators once per shape, for a hardware-counter
profiler (Nsight Compute) to read: Mixer-B fc1 (n16 k2 b32, 25 088 tokens), the shape the layer
targets are set on, and 4096x4096 at density 0.5, block 128 (8 192 tokens), the compute-bound
case; then, at Mixer-B fc1 (rank 32, with the bias column), the layer's low-rank gradient products
and the weight gradient with them in one pass (grad_weight_and_low_rank_products). bf16, random
inputs. The launch order is printed so that the profiler's kernels can be named; with a second
argument only the launches whose names contain it run.

    ncu --kernel-name regex:'line_group|gradient_kernel' python3 bench/cuda_kernel_counters.py build/libpixelfly.so
    python3 bench/cuda_kernel_counters.py build/libpixelfly.so "with the low-rank products"   # that one only"""
import sys

import torch

torch.ops.load_library(sys.argv[1])
only = sys.argv[2] if len(sys.argv) > 2 else ""
BlockLayout = torch.classes.pixelfly.BlockLayout
ops = torch.ops.pixelfly
DT = torch.bfloat16


def launch(name, run):
    if only not in name:
        return
    run()
    torch.cuda.synchronize()
    print(f"launched: {name}", flush=True)


torch.manual_seed(0)
shapes = [("Mixer-B fc1 n16 k2 b32", 3072, 768, 25088, BlockLayout.flat_butterfly(3072, 768, 16, 2, 32)),
          ("4096x4096 n4 k1 b128", 4096, 4096, 8192, BlockLayout.flat_butterfly(4096, 4096, 4, 1, 128))]
for name, out_f, in_f, tokens, layout in shapes:
    b = layout.block()
    values = torch.randn(layout.nnz(), b, b, device="cuda", dtype=DT)
    x = torch.randn(tokens, in_f, device="cuda", dtype=DT)
    dy = torch.randn(tokens, out_f, device="cuda", dtype=DT)
    launch(f"{name} Y", lambda: ops.block_sparse_linear(x, values, layout))
    launch(f"{name} dX", lambda: ops.block_sparse_linear_grad_input(dy, values, layout))
    launch(f"{name} dW", lambda: ops.block_sparse_linear_grad_weight(dy, x, layout))

mixer_fc1 = shapes[0][4]
x = torch.randn(25088, 768, device="cuda", dtype=DT)
dy = torch.randn(25088, 3072, device="cuda", dtype=DT)
u = torch.randn(3072, 32, device="cuda", dtype=DT)
projected = torch.randn(25088, 32, device="cuda", dtype=DT)
launch("Mixer-B fc1 low-rank gradient products", lambda: ops.low_rank_grad_products(dy, u, projected, True))
launch("Mixer-B fc1 weight gradient with the low-rank products",
       lambda: ops.grad_weight_and_low_rank_products(dy, x, mixer_fc1, u, projected, True))
