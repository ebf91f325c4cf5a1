// BlockLayout: the immutable description of which b x b blocks of an out x in matrix are
// nonzero, in block CSR form, with the transpose index (for dX and dW without copies) and the
// merged dense tiles (runs of blocks that kernels can treat as one dense GEMM).
//
// Shapes are in elements (out_features x in_features) and are padded up to whole blocks: the
// layout covers block_rows() x block_cols() blocks of size block() x block(). Blocks are stored
// row by row, columns ascending within a row; "block index" always means the CSR position.
// Knows nothing of tensors or values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pixelfly {

// A dense rectangle of nonzero blocks: block rows [row_begin, row_end) x block columns
// [col_begin, col_end). All rows of a tile have identical column lists, so the CSR position of
// block (r, c) inside it is row_ptr[r] + offset_in_row + (c - col_begin).
struct BlockTile {
  int64_t row_begin = 0;
  int64_t row_end = 0;
  int64_t col_begin = 0;
  int64_t col_end = 0;
  int64_t offset_in_row = 0;
  // Position of this tile's first element in a buffer holding every tile, each tile as a
  // row-major (rows * block) x (cols * block) matrix, tiles in order.
  int64_t packed_offset = 0;

  int64_t rows() const { return row_end - row_begin; }
  int64_t cols() const { return col_end - col_begin; }
  int64_t blocks() const { return rows() * cols(); }
};

class BlockLayout {
 public:
  // From a dense boolean block mask of block_rows x block_cols entries, row-major, where
  // block_rows = ceil(out_features / block) and block_cols = ceil(in_features / block).
  // Throws std::invalid_argument naming the bad parameter.
  static BlockLayout from_block_mask(int64_t out_features, int64_t in_features, int64_t block,
                                     const std::vector<uint8_t>& mask);
  // From block CSR arrays (row_ptr has block_rows + 1 entries, col_idx ascending per row).
  static BlockLayout from_csr(int64_t out_features, int64_t in_features, int64_t block,
                              std::vector<int64_t> row_ptr, std::vector<int64_t> col_idx);

  int64_t out_features() const { return out_features_; }
  int64_t in_features() const { return in_features_; }
  int64_t block() const { return block_; }
  int64_t block_rows() const { return block_rows_; }
  int64_t block_cols() const { return block_cols_; }
  int64_t nnz() const { return static_cast<int64_t>(col_idx_.size()); }
  // Fraction of blocks that are nonzero: nnz / (block_rows * block_cols).
  double density() const;
  // Number of stored weight values: nnz * block * block (padding included).
  int64_t stored_values() const { return nnz() * block_ * block_; }

  const std::vector<int64_t>& row_ptr() const { return row_ptr_; }
  const std::vector<int64_t>& col_idx() const { return col_idx_; }
  int64_t row_count(int64_t block_row) const;

  // Transpose index: column c holds transpose positions [col_ptr[c], col_ptr[c+1]); for each,
  // row_idx gives the block row (ascending) and transpose_block the CSR block index.
  const std::vector<int64_t>& col_ptr() const { return col_ptr_; }
  const std::vector<int64_t>& row_idx() const { return row_idx_; }
  const std::vector<int64_t>& transpose_block() const { return transpose_block_; }

  // Merged dense tiles covering every nonzero block exactly once, ordered by (row, column).
  // Consecutive block rows with identical column lists are merged, then each list is split into
  // maximal runs of consecutive columns.
  const std::vector<BlockTile>& tiles() const { return tiles_; }
  // Mean number of elements per merged tile: how large the dense GEMMs that kernels see are.
  double mean_tile_elements() const;

  bool contains(int64_t block_row, int64_t block_col) const;
  // CSR index of block (r, c), or -1 when the block is zero.
  int64_t block_index(int64_t block_row, int64_t block_col) const;
  std::vector<uint8_t> block_mask() const;
  // One line per block row: 'X' for a nonzero block, '.' for a zero one.
  std::string to_text() const;

  bool operator==(const BlockLayout& other) const;

 private:
  BlockLayout() = default;
  void build_indexes();

  int64_t out_features_ = 0, in_features_ = 0, block_ = 0;
  int64_t block_rows_ = 0, block_cols_ = 0;
  std::vector<int64_t> row_ptr_, col_idx_;
  std::vector<int64_t> col_ptr_, row_idx_, transpose_block_;
  std::vector<BlockTile> tiles_;
};

// ceil(value / divisor) for positive integers.
inline int64_t ceil_div(int64_t value, int64_t divisor) { return (value + divisor - 1) / divisor; }

}  // namespace pixelfly
