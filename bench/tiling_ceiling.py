"""The roofline efficiency that the CUDA kernels' tiling allows, row by row of an operator table
(the log of bench/cuda_block_sparse_bench.py), on any machine (no GPU needed):

    python3 bench/tiling_ceiling.py build/libpixelfly.so OPS_BENCH_LOG [L2_TB_PER_S]

For each flat butterfly row: the products the tiling multiplies against the useful ones (a
forward / grad_input tile multiplies its whole group's union of blocks; a weight-gradient piece
its rows by their union of columns), the rate at which the measured kernel moved its tiling's
bytes through L2, and the ceiling = floor / max(products at cuBLAS's rate, tiling bytes at
L2_TB_PER_S), where floor is the table's own roofline floor (roofline x our time). With the best
L2 rate the kernels reach (default 7.0 TB/s, above the best of any row so far), a row whose
ceiling is under 0.8 cannot reach 0.8 with this tiling, however fast its kernel."""
import re
import sys

import torch

from cuda_block_sparse_bench import FEATURE_TILE, row_lists

torch.ops.load_library(sys.argv[1])
BlockLayout = torch.classes.pixelfly.BlockLayout
SHAPES = {"Mixer-B fc1": (3072, 768), "Mixer-B fc2": (768, 3072), "GPT2-M fc1": (4096, 1024),
          "GPT2-M fc2": (1024, 4096), "ViT-S 2304x768": (2304, 768), "4096x4096": (4096, 4096)}


def products_per_useful(layout, op):
    """Products the tiling multiplies over the useful ones: groups of FEATURE_TILE / b lines times
    their union (forward and the weight gradient group block rows, grad_input block columns)."""
    b = layout.block()
    rows = row_lists(layout)
    cols = [[] for _ in range(-(-layout.in_features() // b))]
    for r, lst in enumerate(rows):
        for c in lst:
            cols[c].append(r)
    lines = cols if op == "dX" else rows
    per = FEATURE_TILE // b
    work = sum(min(per, len(lines) - g) * len(set().union(*lines[g:g + per])) for g in range(0, len(lines), per))
    return work / layout.nnz()


def main():
    l2_rate = float(sys.argv[3]) if len(sys.argv) > 3 else 7.0
    lines = open(sys.argv[2]).read().splitlines()
    table = lines[next(i for i, l in enumerate(lines) if l.startswith("shape ")) + 1:]
    print(f"L2 rate for the ceiling: {l2_rate:.1f} TB/s")
    print(f"{'shape':16s} {'layout':16s} {'op':3s} {'products/useful':>15s} {'L2 TB/s':>8s} {'roofline':>8s} "
          f"{'ceiling':>8s}  bound by")
    for row in table:
        name_and_layout = re.split(r"\s{2,}", row.strip())
        fly = re.match(r"fly n(\d+) k(\d+) b(\d+)", name_and_layout[1]) if len(name_and_layout) > 1 else None
        if not fly or name_and_layout[0] not in SHAPES:
            continue  # random layouts: their masks are drawn in the benchmark's process
        f = row.split()
        density, op, dense_ms, ours_ms = float(f[-10]), f[-9], float(f[-8]), float(f[-7])
        roofline, l2_measured = float(f[-5]), float(f[-4])
        layout = BlockLayout.flat_butterfly(*SHAPES[name_and_layout[0]], int(fly[1]), int(fly[2]), int(fly[3]))
        ratio = products_per_useful(layout, op)
        floor = roofline * ours_ms
        products_ms = density * dense_ms * ratio  # the tiling's products at cuBLAS's rate
        l2_ms = l2_measured * ours_ms / l2_rate  # the tiling's bytes at the L2 rate
        ceiling = floor / max(products_ms, l2_ms)
        print(f"{name_and_layout[0]:16s} {name_and_layout[1]:16s} {op:3s} {ratio:15.2f} {l2_measured:8.2f} "
              f"{roofline:8.2f} {ceiling:8.2f}  {'products' if products_ms > l2_ms else 'L2 bytes'}")


if __name__ == "__main__":
    main()
