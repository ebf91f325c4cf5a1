"""How many products a tiling of a block-sparse operator multiplies and how many bytes it moves
between L2 and the multiprocessors, for the CUDA kernels' own tiling and for any other tile
shape, from a layout alone (no GPU): the `L2 TB/s` column of cuda_block_sparse_bench.py and the
ceilings of tiling_ceiling.py. A tile keeps its results in registers while its operands stream
through shared memory: each tile reads its operands over its K loop, each result is written once.
"""

TOKEN_TILE = 256  # tokens per forward / grad_input tile of the kernels
PIECE_ROWS = 128  # dY features of a weight-gradient piece of the kernels


def row_lists(layout):
    """The block columns of each block row, CSR order."""
    rp, ci = layout.row_ptr().tolist(), layout.col_idx().tolist()
    return [ci[rp[r]:rp[r + 1]] for r in range(len(rp) - 1)]


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


def kernel_tiling(layout, op, tokens):
    """Products over the useful ones and bytes of the kernels' own tiling of `op` (Y, dX or dW):
    line tiles of TOKEN_TILE tokens by the width the kernels run without a low-rank term
    (BlockLayout.line_tile_features), weight-gradient pieces of PIECE_ROWS features of dY by
    BlockLayout.gradient_piece_features() wide parts of their union."""
    b, nnz, lines = layout.block(), layout.nnz(), lines_of(layout, op)
    if op == "dW":
        return piece_tiling(lines, b, nnz, tokens, PIECE_ROWS // b, layout.gradient_piece_features())
    out_features = layout.in_features() if op == "dX" else layout.out_features()
    per = layout.line_tile_features(op == "dX", 0) // b
    return line_tiling(lines, b, nnz, tokens, out_features, per, TOKEN_TILE)
