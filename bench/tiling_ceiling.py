"""The roofline efficiency that the CUDA kernels' tiling allows, and that any tiling of their kind
allows, row by row of an operator table (the log of bench/cuda_block_sparse_bench.py), on any
machine (no GPU needed):

    python3 bench/tiling_ceiling.py build/libpixelfly.so OPS_BENCH_LOG [TB_PER_S]

A tile keeps its results in registers while its operands stream through shared memory, so
every result costs its multiprocessor the operand bytes of its tile's K loop (shared with the
tile's other results) and its own write; those bytes pass between L2 and the multiprocessors at
some rate, TB_PER_S (default: the table's best, the highest `L2 TB/s` any of its rows reached).
For each row:

- the kernels' tiling as the benchmark's `L2 TB/s` column models it (forward / grad_input: 256
  tokens by groups of 128 / b lines over their union of blocks, although Mixer-B's and ViT-S's
  kernels run 192-wide tiles; weight gradient: pieces of 128 / b block rows over their union of
  columns, as the kernels): the products it multiplies over the useful ones, the rate at which
  the measured kernel moved its bytes, and its ceiling;
- the best register tile: of the tiles whose float32 results fit two consumer warpgroups'
  registers (tokens x features, or a weight-gradient piece's rows x columns, at most 49 152:
  192 per thread, what the wide tiles hold), the one with the highest ceiling, its shape and
  its products over the useful ones. A row whose best ceiling is under 0.8 cannot reach 0.8 at
  that rate with any kernel that keeps its results in registers and streams both operands.

ceiling = the row's roofline floor (roofline x our time) / max(the floor, the tiling's products
at cuBLAS's rate, the tiling's bytes at TB_PER_S). Random layouts are drawn as the benchmark
draws them (cuda_block_sparse_bench.random_layouts)."""
import re
import sys

import torch

from cuda_block_sparse_bench import FEATURE_TILE, TOKEN_TILE, random_layouts, row_lists

torch.ops.load_library(sys.argv[1])
BlockLayout = torch.classes.pixelfly.BlockLayout
SHAPES = {"Mixer-B fc1": (3072, 768, 25088), "Mixer-B fc2": (768, 3072, 25088), "GPT2-M fc1": (4096, 1024, 8192),
          "GPT2-M fc2": (1024, 4096, 8192), "ViT-S 2304x768": (2304, 768, 25088), "4096x4096": (4096, 4096, 8192)}
ACCUMULATORS = 49152  # float32 results of one tile: 2 warpgroups x 128 threads x 192 registers
TOKEN_TILES = (64, 128, 256, 512, 1024)  # multiples of the tensor cores' m64
MAX_FEATURES = 256  # a line tile's width (the widest wgmma product)
MAX_COLUMNS = 512  # a weight-gradient piece's columns (two products of 256)


def lines_of(layout, op):
    """The lists a tile walks: block rows' columns (Y, dW) or block columns' rows (dX)."""
    rows = row_lists(layout)
    if op != "dX":
        return rows
    cols = [[] for _ in range(-(-layout.in_features() // layout.block()))]
    for r, lst in enumerate(rows):
        for c in lst:
            cols[c].append(r)
    return cols


def groups(lines, per):
    """(lines in the group, blocks in its union) of consecutive groups of `per` lines."""
    return [(min(per, len(lines) - g), len(set().union(*lines[g:g + per]))) for g in range(0, len(lines), per)]


def line_tiling(lines, b, nnz, tokens, out_features, per, token_tile):
    """Products over the useful ones and bytes of forward / grad_input tiles of `per` lines by
    `token_tile` tokens: activations over each group's union per token tile, the weight blocks
    once per token tile, every result written once."""
    g = groups(lines, per)
    token_tiles = -(-tokens // token_tile)
    nbytes = token_tiles * (token_tile * sum(u for _, u in g) * b * 2 + nnz * b * b * 2) + tokens * out_features * 2
    return sum(n * u for n, u in g) / nnz, nbytes


def piece_tiling(rows, b, nnz, tokens, per, columns):
    """Products over the useful ones and bytes of weight-gradient pieces of `per` block rows by at
    most `columns` features of their union: each piece reads its dY rows and X columns over all
    tokens, and the result is written once in float32."""
    products = nbytes = 0
    for n, u in groups(rows, per):
        products += n * u
        nbytes += tokens * 2 * (-(-u * b // columns) * n * b + u * b)
    return products / nnz, nbytes + nnz * b * b * 4


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
    table = [row for row in table if re.split(r"\s{2,}", row.strip())[0] in SHAPES]
    best_rate = max(float(row.split()[-4]) for row in table)
    rate = (float(sys.argv[3]) if len(sys.argv) > 3 else best_rate) * 1e12
    torch.manual_seed(0)  # as the benchmark seeds it before drawing its random layouts
    randoms = random_layouts((32, 64, 128))
    print(f"rate between L2 and the multiprocessors for the ceilings: {rate / 1e12:.2f} TB/s "
          f"(the table's best: {best_rate:.2f})")
    print(f"{'shape':16s} {'layout':16s} {'op':3s} {'roofline':>8s} | kernels' tiling: {'products':>8s} "
          f"{'TB/s':>5s} {'ceiling':>7s} | best register tile: {'tile':>8s} {'products':>8s} {'ceiling':>7s}")
    for row in table:
        name_and_layout = re.split(r"\s{2,}", row.strip())
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
        density, op, dense_ms, ours_ms = float(f[-10]), f[-9], float(f[-8]), float(f[-7])
        roofline, l2_measured = float(f[-5]), float(f[-4])
        floor = roofline * ours_ms
        useful_ms = density * dense_ms  # the useful products at cuBLAS's rate

        def ceiling(products, nbytes):
            return floor / max(floor, useful_ms * products, nbytes / rate * 1e3)

        b, nnz = layout.block(), layout.nnz()
        out_features = in_f if op == "dX" else out_f
        if op == "dW":
            ours_products, _ = piece_tiling(lines_of(layout, op), b, nnz, tokens, FEATURE_TILE // b,
                                            layout.gradient_piece_features())
        else:
            ours_products, _ = line_tiling(lines_of(layout, op), b, nnz, tokens, out_features, FEATURE_TILE // b,
                                           TOKEN_TILE)
        # The kernels' own bytes are the table's: its L2 TB/s times our time.
        ours_ceiling = ceiling(ours_products, l2_measured * 1e12 * ours_ms * 1e-3)
        tile, products, nbytes = max(candidates(layout, op, tokens, out_features), key=lambda c: ceiling(c[1], c[2]))
        print(f"{name_and_layout[0]:16s} {name_and_layout[1]:16s} {op:3s} {roofline:8.2f} | {'':16s} "
              f"{ours_products:8.2f} {l2_measured:5.2f} {ours_ceiling:7.2f} | {'':19s} {tile:>8s} {products:8.2f} "
              f"{ceiling(products, nbytes):7.2f}")


if __name__ == "__main__":
    main()
