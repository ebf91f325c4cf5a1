"""The roofline efficiency that the CUDA kernels' tiling allows, and that any tiling of their kind
allows, row by row of an operator table (the log of bench/cuda_block_sparse_bench.py), on any
machine (no GPU needed):

    python3 bench/tiling_ceiling.py build/libpixelfly.so OPS_BENCH_LOG [TB_PER_S]

A tile keeps its results in registers while its operands stream through shared memory, so
every result costs its multiprocessor the operand bytes of its tile's K loop (shared with the
tile's other results) and its own write; those bytes pass between L2 and the multiprocessors at
some rate, TB_PER_S (default: the best rate any of the table's rows reached). For each row:

- the kernels' tiling (tiling_model.kernel_tiling: forward / grad_input tiles of 256 tokens by
  the width the kernels run, over each group's union of blocks; weight-gradient pieces of 128
  features of dY by their union of columns): the products it multiplies over the
  useful ones, the rate at which the measured kernel moved its bytes, and its ceiling;
- the best register tile: of the tiles whose float32 results fit two consumer warpgroups'
  registers (tokens x features, or a weight-gradient piece's rows x columns, at most 49 152:
  192 per thread, what the wide tiles hold), the one with the highest ceiling, its shape and
  its products over the useful ones. A row whose best ceiling is under 0.8 cannot reach 0.8 at
  that rate with any kernel that keeps its results in registers and streams both operands.

ceiling = the row's roofline floor (roofline x our time) / max(the floor, the tiling's products
at cuBLAS's rate, the tiling's bytes at TB_PER_S). Random layouts are drawn as the benchmark
draws them (cuda_block_sparse_bench.random_layouts).

Where the table has cuBLAS's time on the benchmark's compact (packed) dense problem (`cmpct ms`:
the same useful products and output, no more input bytes), the last column is the roofline
efficiency cuBLAS reaches there (roofline / `vs cmpct`): a row where it is under 0.8 is one where
the best dense library does not reach 0.8 on that work either."""
import re
import sys

import torch

from cuda_block_sparse_bench import SHAPES as BENCH_SHAPES, SQUARE, random_layouts
from tiling_model import kernel_tiling, line_tiling, lines_of, piece_tiling

BlockLayout = torch.classes.pixelfly.BlockLayout  # the benchmark module loaded the library
SHAPES = {name: (out_f, in_f, tokens) for name, out_f, in_f, tokens in BENCH_SHAPES + [SQUARE]}
ACCUMULATORS = 49152  # float32 results of one tile: 2 warpgroups x 128 threads x 192 registers
TOKEN_TILES = (64, 128, 256, 512, 1024)  # multiples of the tensor cores' m64
MAX_FEATURES = 256  # a line tile's width (the widest wgmma product)
MAX_COLUMNS = 512  # a weight-gradient piece's columns (two products of 256)


def candidates(layout, op, tokens, out_features):
    """(shape, products over useful, bytes) of every register tile of the row's operator."""
    b, nnz, lines = layout.block(), layout.nnz(), lines_of(layout, op)
    if op == "dW":
        for per in range(1, MAX_FEATURES // b + 1):
            if per * b % 64 != 0:  # dY rows come in the tensor cores' m64
                continue
            for columns in range(b, MAX_COLUMNS + 1, b):
                if per * b * columns <= ACCUMULATORS:
                    yield (f"{per * b}x{columns}", *piece_tiling(lines, b, nnz, tokens, per, columns))
        return
    for per in range(1, MAX_FEATURES // b + 1):
        for token_tile in TOKEN_TILES:
            if token_tile * per * b <= ACCUMULATORS:
                yield (f"{token_tile}x{per * b}", *line_tiling(lines, b, nnz, tokens, out_features, per, token_tile))


def main():
    lines = open(sys.argv[2]).read().splitlines()
    table = lines[next(i for i, l in enumerate(lines) if l.startswith("shape ")) + 1:]
    torch.manual_seed(0)  # as the benchmark seeds it before drawing its random layouts
    randoms = random_layouts((32, 64, 128))
    rows = []  # (shape, layout label, op, roofline, floor ms, useful products ms, layout, tokens, our ms,
    #           cuBLAS's roofline on the packed problem or None)
    for row in table:
        name_and_layout = re.split(r"\s{2,}", row.strip())
        if len(name_and_layout) < 2 or name_and_layout[0] not in SHAPES:
            continue
        out_f, in_f, tokens = SHAPES[name_and_layout[0]]
        fly = re.match(r"fly n(\d+) k(\d+) b(\d+)", name_and_layout[1])
        rand = re.match(r"random ([0-9.]+) b(\d+)", name_and_layout[1])
        if fly:
            layout = BlockLayout.flat_butterfly(out_f, in_f, int(fly[1]), int(fly[2]), int(fly[3]))
        elif rand and out_f == in_f == 4096:
            layout = randoms[(int(rand[2]), float(rand[1]))]
        else:
            continue
        f = row.split()
        r = max(i for i, field in enumerate(f) if re.fullmatch(r"[0-9.]+e[-+][0-9]+", field))  # rel err
        density, op, dense_ms, ours_ms, roofline = float(f[r - 9]), f[r - 8], float(f[r - 7]), float(f[r - 6]), float(f[r - 4])
        packed = roofline / float(f[r + 2].rstrip("x")) if len(f) > r + 2 else None  # cuBLAS's roofline, packed
        rows.append((name_and_layout[0], name_and_layout[1], op, roofline, roofline * ours_ms, density * dense_ms,
                     layout, tokens, ours_ms, packed))
    # The rate at which each kernel moved its tiling's bytes; the best of them unless one is given.
    kernels = [kernel_tiling(layout, op, tokens) for _, _, op, _, _, _, layout, tokens, _, _ in rows]
    moved = [nbytes / (r[8] * 1e-3) for (_, nbytes), r in zip(kernels, rows)]
    best_rate = max(moved)
    rate = float(sys.argv[3]) * 1e12 if len(sys.argv) > 3 else best_rate
    print(f"rate between L2 and the multiprocessors for the ceilings: {rate / 1e12:.2f} TB/s "
          f"(the table's best: {best_rate / 1e12:.2f})")
    print(f"{'shape':16s} {'layout':16s} {'op':3s} {'roofline':>8s} | kernels' tiling: {'products':>8s} "
          f"{'TB/s':>5s} {'ceiling':>7s} | best register tile: {'tile':>8s} {'products':>8s} {'ceiling':>7s} | "
          f"cuBLAS packed: {'roofline':>8s}")
    for (shape, label, op, roofline, floor, useful_ms, layout, tokens, _, packed), (ours_products, ours_bytes), \
            rate_moved in zip(rows, kernels, moved):

        def ceiling(products, nbytes):
            return floor / max(floor, useful_ms * products, nbytes / rate * 1e3)

        out_features = layout.in_features() if op == "dX" else layout.out_features()
        tile, products, nbytes = max(candidates(layout, op, tokens, out_features), key=lambda c: ceiling(c[1], c[2]))
        packed_text = f"{packed:8.2f}" if packed is not None else f"{'-':>8s}"
        print(f"{shape:16s} {label:16s} {op:3s} {roofline:8.2f} | {'':16s} {ours_products:8.2f} "
              f"{rate_moved / 1e12:5.2f} {ceiling(ours_products, ours_bytes):7.2f} | {'':19s} {tile:>8s} "
              f"{products:8.2f} {ceiling(products, nbytes):7.2f} | {'':14s} {packed_text}")


if __name__ == "__main__":
    main()
