"""CUDA benchmark: pixelfly's block-sparse operators (Y = X W^T, dX = dY W, dW on the blocks)
against dense cuBLAS (torch.matmul) and PyTorch's own block-sparse matmul (BSR, Triton), all
in the same process on the same GPU, bf16 unless --dtype says otherwise. Loads the operators from
libpixelfly.so, so it also shows them being called from Python.

    python3 bench/cuda_block_sparse_bench.py build/libpixelfly.so [--quick] [--timer flushed]
        [--dtype bfloat16|float16|float32]

float32 runs the CUDA-core kernels (the tensor-core kernels take 16-bit operands) against
cuBLAS's float32 product as PyTorch runs it by default (TF32 off; the header says which); its
"L2 TB/s" column is empty, the tiling model being the tensor-core kernels'.

GPU time per call in steady state (bench/gpu_timers.py: steady_time, calls back to back on
rotating copies of their inputs in a CUDA graph), or with --timer flushed each call after L2 is
cleared (triton's do_bench, the timer of versions up to 24, which also charges a call for
writing back the clearing's dirty lines and, where a call's host time exceeds the clearing's,
for the GPU's wait on the host). Every operation of a run has the same timer but the copy, which
is always flushed (1 GiB: the write-back is under 3 % of its bytes; docs/perf.md, version 25).

Roofline efficiency = max(density * FLOPs / dense_rate, bytes / copy_bandwidth) / our_time,
where dense_rate is cuBLAS's measured rate at that shape and copy_bandwidth a measured
device-to-device copy (bytes read + written).

"cmpct ms" is cuBLAS on the compact dense problem with the same useful products and the same
output: Y = X' W'^T with X' tokens x K and W' out x K, K the weight's nonzeros per output feature
(nnz * b * b / out, rounded up to a multiple of 8); dX the same with K = nonzeros per input
feature; dW = dY^T X' (out x K over the tokens, as many results as the blocks hold). It is what
the best dense library does with the products the sparse operator cannot avoid, on a problem with
the same output and no more input bytes (the sparse operator reads all of its activations,
the packed one K columns of them): "vs cmpct" is its time over ours (above 1: faster than cuBLAS
on the packed problem).

"L2 TB/s" is the rate at which the kernels move the bytes their tiling needs between L2 and the
multiprocessors (bench/tiling_model.py, kernel_tiling): every tile reads its activation rows over
its group's union of blocks and its weight blocks, every result is written once. Tables before
2026-12-01 counted every line tile 128 features wide, also where the kernels run 192."""
import sys

import torch
from torch.sparse._triton_ops import bsr_dense_mm

from gpu_timers import copy_bandwidth, flushed_time, steady_from_argv, time_call
from tiling_model import kernel_tiling, row_lists

torch.ops.load_library(sys.argv[1])
quick = "--quick" in sys.argv
steady = steady_from_argv(sys.argv)
BlockLayout = torch.classes.pixelfly.BlockLayout
ops = torch.ops.pixelfly
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def dtype_from_argv(argv):
    """The run's element type: `--dtype NAME`, bfloat16 unless given."""
    if "--dtype" not in argv:
        return torch.bfloat16
    i = argv.index("--dtype")
    name = argv[i + 1] if i + 1 < len(argv) else ""
    if name not in DTYPES:
        sys.exit(f"--dtype: got '{name}', expected one of {', '.join(DTYPES)}")
    return DTYPES[name]


DT = dtype_from_argv(sys.argv)
ELEMENT_BYTES = DT.itemsize


def bench(call, inputs):
    """Seconds per call of call(*inputs) by this run's timer."""
    return time_call(call, inputs, steady, quick)


def read_write_bandwidth():
    """Device memory read alone (a sum) and written alone (a fill), 1 GiB each: the roofline
    takes the copy's mix of both, and the forward and grad_input outputs of many tokens are
    mostly writes."""
    a = torch.randn(1 << 28, device="cuda", dtype=torch.float32)
    return (a.numel() * 4 / flushed_time(lambda: a.sum(), quick),
            a.numel() * 4 / flushed_time(lambda: a.fill_(1.0), quick))


def dense_mask(layout):
    rows = -(-layout.out_features() // layout.block())
    cols = -(-layout.in_features() // layout.block())
    m = torch.zeros(rows, cols, dtype=torch.bool)
    for r, lst in enumerate(row_lists(layout)):
        m[r, lst] = True
    b = layout.block()
    return m.repeat_interleave(b, 0).repeat_interleave(b, 1)[: layout.out_features(), : layout.in_features()]


def blocks_of(w, layout):
    """Nonzero blocks (nnz, b, b) of a dense out x in matrix, CSR order."""
    b = layout.block()
    rows, cols = -(-w.shape[0] // b), -(-w.shape[1] // b)
    padded = torch.nn.functional.pad(w, (0, cols * b - w.shape[1], 0, rows * b - w.shape[0]))
    tiles = padded.view(rows, b, cols, b).permute(0, 2, 1, 3).reshape(rows * cols, b, b)
    idx = [r * cols + c for r, lst in enumerate(row_lists(layout)) for c in lst]
    return tiles[torch.tensor(idx, device=w.device)].contiguous()


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def compact_depth(nonzeros, features):
    """K of a compact dense problem: `nonzeros` weights over `features` outputs, rounded up to
    16 bytes of elements (cuBLAS's alignment: 8 in 16 bits, 4 in float32)."""
    per_feature = -(-nonzeros // features)
    multiple = 16 // ELEMENT_BYTES
    return -(-per_feature // multiple) * multiple


def run(name, out_f, in_f, tokens, layout, bw):
    mask = dense_mask(layout).cuda()
    w = torch.randn(out_f, in_f, device="cuda", dtype=DT) * mask
    values = blocks_of(w, layout)
    x = torch.randn(tokens, in_f, device="cuda", dtype=DT)
    dy = torch.randn(tokens, out_f, device="cuda", dtype=DT)
    wd = torch.randn(out_f, in_f, device="cuda", dtype=DT)
    rho = layout.density()
    flops = 2.0 * tokens * out_f * in_f
    nnz_el = layout.nnz() * layout.block() ** 2
    # Fewest bytes: each operand read once, each result written once.
    bytes_y = ELEMENT_BYTES * (tokens * in_f + tokens * out_f + nnz_el)
    bytes_dw = ELEMENT_BYTES * (tokens * in_f + tokens * out_f + nnz_el)
    errs = (rel(ops.block_sparse_linear(x, values, layout), x.float() @ w.float().t()),
            rel(ops.block_sparse_linear_grad_input(dy, values, layout), dy.float() @ w.float()),
            rel(ops.block_sparse_linear_grad_weight(dy, x, layout), blocks_of(dy.float().t() @ x.float(), layout)))
    t_dense = {"Y": bench(lambda a, b: a @ b.t(), (x, wd)), "dX": bench(lambda a, b: a @ b, (dy, wd)),
               "dW": bench(lambda a, b: a.t() @ b, (dy, x))}
    # The compact dense problems (module docstring): the same useful products, packed.
    k_y = compact_depth(nnz_el, out_f)
    k_dx = compact_depth(nnz_el, in_f)
    x_c, w_y = torch.randn(tokens, k_y, device="cuda", dtype=DT), torch.randn(out_f, k_y, device="cuda", dtype=DT)
    dy_c, w_dx = torch.randn(tokens, k_dx, device="cuda", dtype=DT), torch.randn(k_dx, in_f, device="cuda", dtype=DT)
    t_compact = {"Y": bench(lambda a, b: a @ b.t(), (x_c, w_y)), "dX": bench(lambda a, b: a @ b, (dy_c, w_dx)),
                 "dW": bench(lambda a, b: a.t() @ b, (dy, x_c))}
    t_ours = {"Y": bench(lambda a, v: ops.block_sparse_linear(a, v, layout), (x, values)),
              "dX": bench(lambda a, v: ops.block_sparse_linear_grad_input(a, v, layout), (dy, values)),
              "dW": bench(lambda a, b: ops.block_sparse_linear_grad_weight(a, b, layout), (dy, x))}
    # torch BSR's Y, and ours beside it by the same timer: the run's, or the flushed one where BSR
    # cannot be captured in a CUDA graph (steady).
    t_bsr, t_y_bsr = float("nan"), t_ours["Y"]
    try:
        wb = w.to_sparse_bsr((layout.block(), layout.block()))
        xt = x.t().contiguous()
        bsr_dense_mm(wb, xt)
        try:
            t_bsr = bench(lambda a: bsr_dense_mm(wb, a), (xt,))
        except RuntimeError as e:
            print(f"  torch BSR not timed in a graph on {name} ({str(e)[:60]}); both flushed", file=sys.stderr)
            torch.cuda.synchronize()
            t_bsr = flushed_time(lambda: bsr_dense_mm(wb, xt), quick)
            t_y_bsr = flushed_time(lambda: ops.block_sparse_linear(x, values, layout), quick)
    except Exception as e:  # noqa: BLE001 - report and continue
        print(f"  torch BSR failed on {name}: {str(e)[:80]}", file=sys.stderr)
    rows = []
    for op, nbytes in zip(("Y", "dX", "dW"), (bytes_y, bytes_y, bytes_dw)):
        l2_bytes = kernel_tiling(layout, op, tokens)[1] if ELEMENT_BYTES == 2 else float("nan")
        dense_rate = flops / t_dense[op]
        floor = max(rho * flops / dense_rate, nbytes / bw)
        rows.append((op, t_dense[op], t_ours[op], floor / t_ours[op], l2_bytes / t_ours[op], t_compact[op]))
    return rho, rows, t_bsr / t_y_bsr, t_bsr, errs


# (name, out features, in features, tokens): the paper's MLP shapes, then the square layer.
SHAPES = [("Mixer-B fc1", 3072, 768, 25088), ("Mixer-B fc2", 768, 3072, 25088), ("GPT2-M fc1", 4096, 1024, 8192),
          ("GPT2-M fc2", 1024, 4096, 8192), ("ViT-S 2304x768", 2304, 768, 25088)]
SQUARE = ("4096x4096", 4096, 4096, 8192)
RANDOM_DENSITIES = (0.1, 0.25, 0.5)


def random_layouts(blocks):
    """The benchmark's random 4096 x 4096 layouts by (block, density), each block kept
    independently with probability `density`. Density 0.25 comes from the global generator in the
    order of `blocks`, as every table before 2026-12-01 drew it (call right after seeding it); the
    other densities each from a generator seeded by the block and the density."""
    layouts = {}
    for b in blocks:
        for density in RANDOM_DENSITIES:
            own = None if density == 0.25 else torch.Generator().manual_seed(1000 * b + round(100 * density))
            mask = torch.rand(4096 // b, 4096 // b, generator=own) < density
            layouts[(b, density)] = BlockLayout.from_block_mask(4096, 4096, b, mask)
    return layouts


def main():
    torch.manual_seed(0)
    randoms = random_layouts((32, 64, 128))
    bw = copy_bandwidth(quick)
    read_bw, write_bw = read_write_bandwidth()
    dtype = str(DT).removeprefix("torch.")
    if DT == torch.float32:
        dtype += f"  TF32 matmul {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}"
    print(f"{torch.cuda.get_device_name()}  torch {torch.__version__}  {'steady' if steady else 'flushed'} timer  "
          f"copy bandwidth {bw / 1e12:.2f} TB/s (read alone {read_bw / 1e12:.2f}, written alone {write_bw / 1e12:.2f})  "
          f"{dtype}", flush=True)
    configs = [(s, BlockLayout.flat_butterfly(s[1], s[2], 16, 2, 32), "fly n16 k2 b32") for s in SHAPES]
    # Block 16, which the planner picks for Mixer-B's and GPT-2's fc2 at density 0.25.
    configs.append((SHAPES[1], BlockLayout.flat_butterfly(SHAPES[1][1], SHAPES[1][2], 16, 2, 16), "fly n16 k2 b16"))
    square = SQUARE
    for b in (32, 64, 128) if not quick else (32,):
        for n, k in ((16, 1), (8, 1), (4, 1)):
            configs.append((square, BlockLayout.flat_butterfly(4096, 4096, n, k, b), f"fly n{n} k{k} b{b}"))
        for density in RANDOM_DENSITIES if not quick else (0.25,):
            configs.append((square, randoms[(b, density)], f"random {density:g} b{b}"))
    header = (f"{'shape':16s} {'layout':18s} {'dens':>5s} {'op':>3s} {'dense ms':>9s} {'ours ms':>9s} {'speedup':>8s} "
              f"{'roofline':>8s} {'L2 TB/s':>7s} {'bsr ms':>8s} {'vs bsr':>7s} {'rel err':>8s} {'cmpct ms':>9s} "
              f"{'vs cmpct':>8s}")
    lines = [header]
    for (name, out_f, in_f, tokens), layout, label in configs:
        rho, rows, vs_bsr, t_bsr, errs = run(name, out_f, in_f, tokens, layout, bw)
        for (op, td, to, eff, l2_rate, tc), err in zip(rows, errs):
            bsr = f"{t_bsr * 1e3:8.3f} {vs_bsr:6.2f}x" if op == "Y" and t_bsr == t_bsr else f"{'-':>8s} {'-':>7s}"
            l2 = f"{l2_rate / 1e12:7.2f}" if l2_rate == l2_rate else f"{'-':>7s}"
            line = (f"{name:16s} {label:18s} {rho:5.3f} {op:>3s} {td * 1e3:9.3f} {to * 1e3:9.3f} {td / to:7.2f}x "
                    f"{eff:8.2f} {l2} {bsr} {err:8.1e} {tc * 1e3:9.3f} {tc / to:7.2f}x")
            print(line, flush=True)
            lines.append(line)
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
