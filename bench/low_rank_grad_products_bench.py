"""CUDA benchmark: the two products of a PixelflyLinear backward that read all of dy against the
low-rank factors, dy u and dy^T [x v | 1], as pixelfly's one-pass kernel
(pixelfly::low_rank_grad_products with its ones column) against the cuBLAS products it replaces
(torch.mm of dy by u and of dy^T by [x v | 1], the same process and GPU), bf16, at the paper's MLP
shapes with the released rank 32 and a bias.

    python3 bench/low_rank_grad_products_bench.py build/libpixelfly.so [--timer flushed]

GPU time per call in steady state (bench/gpu_timers.py), or with --timer flushed after triton's
L2 clearing as up to version 24; the copy rate always flushed. "floor" is the bytes the pass must
move (dy read once, u, x v, the outputs) over a measured device-to-device copy rate (bytes
read + written); "roofline" is floor / our time."""
import sys

import torch

from gpu_timers import copy_bandwidth, steady_from_argv, time_call

torch.ops.load_library(sys.argv[1])
ops = torch.ops.pixelfly
DT = torch.bfloat16
steady = steady_from_argv(sys.argv)
torch.manual_seed(0)


def bench(call, inputs):
    """Seconds per call of call(*inputs) by this run's timer."""
    return time_call(call, inputs, steady)


def main():
    bandwidth = copy_bandwidth()
    print(f"device {torch.cuda.get_device_name()}, {'steady' if steady else 'flushed'} timer, "
          f"copy bandwidth {bandwidth / 1e12:.2f} TB/s")
    rank, width = 32, 40  # the product's columns: rank, then the ones column padded to 8
    header = f"{'shape':<14}{'tokens':>7}{'out':>6}{'cuBLAS us':>11}{'ours us':>9}{'speed-up':>10}{'floor us':>10}{'roofline':>10}"
    rows = [header]
    for name, tokens, out in [("Mixer-B fc1", 25088, 3072), ("Mixer-B fc2", 25088, 768),
                              ("GPT-2-M fc1", 8192, 4096), ("GPT-2-M fc2", 8192, 1024)]:
        dy = torch.randn(tokens, out, device="cuda", dtype=DT)
        u = torch.randn(out, rank, device="cuda", dtype=DT) * 0.1
        projected = torch.randn(tokens, rank, device="cuda", dtype=DT)
        with_ones = torch.ones(tokens, width, device="cuda", dtype=DT)
        with_ones[:, :rank] = projected
        grad_projected, product = ops.low_rank_grad_products(dy, u, projected, True)
        reference_u = dy.float() @ u.float()
        reference_p = dy.float().t() @ with_ones[:, :rank + 1].float()
        errors = [((a.float() - b).norm() / b.norm()).item()
                  for a, b in ((grad_projected, reference_u), (product, reference_p))]
        assert max(errors) < 1e-2, f"{name}: relative errors {errors}"
        cublas = bench(lambda a, b, c: (torch.mm(a, b), torch.mm(a.t(), c)), (dy, u, with_ones))
        ours = bench(lambda a, b, c: ops.low_rank_grad_products(a, b, c, True), (dy, u, projected))
        moved = 2 * (tokens * out + out * rank + tokens * rank + tokens * rank) + 4 * out * width
        floor = moved / bandwidth
        rows.append(f"{name:<14}{tokens:>7}{out:>6}{cublas * 1e6:>11.1f}{ours * 1e6:>9.1f}{cublas / ours:>9.2f}x"
                    f"{floor * 1e6:>10.1f}{floor / ours:>10.2f}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
