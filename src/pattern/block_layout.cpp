// BlockLayout construction, validation and the derived indexes (transpose, merged tiles).
#include "pixelfly/pattern/block_layout.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace pixelfly {
namespace {

void check_shape(int64_t out_features, int64_t in_features, int64_t block) {
  if (out_features <= 0) {
    throw std::invalid_argument("out_features must be >= 1, got " + std::to_string(out_features));
  }
  if (in_features <= 0) {
    throw std::invalid_argument("in_features must be >= 1, got " + std::to_string(in_features));
  }
  if (block <= 0) {
    throw std::invalid_argument("block must be >= 1, got " + std::to_string(block));
  }
}

}  // namespace

BlockLayout BlockLayout::from_block_mask(int64_t out_features, int64_t in_features, int64_t block,
                                         const std::vector<uint8_t>& mask) {
  check_shape(out_features, in_features, block);
  const int64_t rows = ceil_div(out_features, block);
  const int64_t cols = ceil_div(in_features, block);
  if (static_cast<int64_t>(mask.size()) != rows * cols) {
    throw std::invalid_argument("block mask must have block_rows * block_cols = " +
                                std::to_string(rows) + " * " + std::to_string(cols) +
                                " entries, got " + std::to_string(mask.size()));
  }
  std::vector<int64_t> row_ptr(rows + 1, 0), col_idx;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      if (mask[r * cols + c]) col_idx.push_back(c);
    }
    row_ptr[r + 1] = static_cast<int64_t>(col_idx.size());
  }
  return from_csr(out_features, in_features, block, std::move(row_ptr), std::move(col_idx));
}

BlockLayout BlockLayout::from_csr(int64_t out_features, int64_t in_features, int64_t block,
                                  std::vector<int64_t> row_ptr, std::vector<int64_t> col_idx) {
  check_shape(out_features, in_features, block);
  BlockLayout layout;
  layout.out_features_ = out_features;
  layout.in_features_ = in_features;
  layout.block_ = block;
  layout.block_rows_ = ceil_div(out_features, block);
  layout.block_cols_ = ceil_div(in_features, block);
  if (static_cast<int64_t>(row_ptr.size()) != layout.block_rows_ + 1) {
    throw std::invalid_argument("row_ptr must have block_rows + 1 = " +
                                std::to_string(layout.block_rows_ + 1) + " entries, got " +
                                std::to_string(row_ptr.size()));
  }
  if (row_ptr.front() != 0 || row_ptr.back() != static_cast<int64_t>(col_idx.size())) {
    throw std::invalid_argument("row_ptr must start at 0 and end at col_idx.size() = " +
                                std::to_string(col_idx.size()));
  }
  for (int64_t r = 0; r < layout.block_rows_; ++r) {
    if (row_ptr[r + 1] < row_ptr[r]) {
      throw std::invalid_argument("row_ptr must be non-decreasing (block row " +
                                  std::to_string(r) + ")");
    }
    for (int64_t i = row_ptr[r]; i < row_ptr[r + 1]; ++i) {
      if (col_idx[i] < 0 || col_idx[i] >= layout.block_cols_) {
        throw std::invalid_argument("col_idx[" + std::to_string(i) + "] = " +
                                    std::to_string(col_idx[i]) + " is outside [0, " +
                                    std::to_string(layout.block_cols_) + ")");
      }
      if (i > row_ptr[r] && col_idx[i] <= col_idx[i - 1]) {
        throw std::invalid_argument("col_idx must be strictly ascending within block row " +
                                    std::to_string(r));
      }
    }
  }
  layout.row_ptr_ = std::move(row_ptr);
  layout.col_idx_ = std::move(col_idx);
  layout.build_indexes();
  return layout;
}

void BlockLayout::build_indexes() {
  // Transpose index by counting sort over columns; rows come out ascending within a column.
  col_ptr_.assign(block_cols_ + 1, 0);
  for (int64_t c : col_idx_) ++col_ptr_[c + 1];
  for (int64_t c = 0; c < block_cols_; ++c) col_ptr_[c + 1] += col_ptr_[c];
  row_idx_.assign(nnz(), 0);
  transpose_block_.assign(nnz(), 0);
  std::vector<int64_t> next(col_ptr_.begin(), col_ptr_.end() - 1);
  for (int64_t r = 0; r < block_rows_; ++r) {
    for (int64_t i = row_ptr_[r]; i < row_ptr_[r + 1]; ++i) {
      const int64_t pos = next[col_idx_[i]]++;
      row_idx_[pos] = r;
      transpose_block_[pos] = i;
    }
  }

  // Merged tiles: group consecutive rows with identical column lists, split into column runs.
  tiles_.clear();
  int64_t packed = 0;
  int64_t r = 0;
  while (r < block_rows_) {
    if (row_count(r) == 0) {
      ++r;
      continue;
    }
    int64_t group_end = r + 1;
    while (group_end < block_rows_ &&
           std::equal(col_idx_.begin() + row_ptr_[r], col_idx_.begin() + row_ptr_[r + 1],
                      col_idx_.begin() + row_ptr_[group_end],
                      col_idx_.begin() + row_ptr_[group_end + 1])) {
      ++group_end;
    }
    int64_t i = row_ptr_[r];
    while (i < row_ptr_[r + 1]) {
      int64_t j = i + 1;
      while (j < row_ptr_[r + 1] && col_idx_[j] == col_idx_[j - 1] + 1) ++j;
      BlockTile tile;
      tile.row_begin = r;
      tile.row_end = group_end;
      tile.col_begin = col_idx_[i];
      tile.col_end = col_idx_[j - 1] + 1;
      tile.offset_in_row = i - row_ptr_[r];
      tile.packed_offset = packed;
      packed += tile.blocks() * block_ * block_;
      tiles_.push_back(tile);
      i = j;
    }
    r = group_end;
  }
}

double BlockLayout::density() const {
  return static_cast<double>(nnz()) / static_cast<double>(block_rows_ * block_cols_);
}

int64_t BlockLayout::row_count(int64_t block_row) const {
  return row_ptr_[block_row + 1] - row_ptr_[block_row];
}

double BlockLayout::mean_tile_elements() const {
  if (tiles_.empty()) return 0.0;
  return static_cast<double>(stored_values()) / static_cast<double>(tiles_.size());
}

int64_t BlockLayout::block_index(int64_t block_row, int64_t block_col) const {
  if (block_row < 0 || block_row >= block_rows_ || block_col < 0 || block_col >= block_cols_) {
    return -1;
  }
  const auto begin = col_idx_.begin() + row_ptr_[block_row];
  const auto end = col_idx_.begin() + row_ptr_[block_row + 1];
  const auto it = std::lower_bound(begin, end, block_col);
  return (it != end && *it == block_col) ? static_cast<int64_t>(it - col_idx_.begin()) : -1;
}

bool BlockLayout::contains(int64_t block_row, int64_t block_col) const {
  return block_index(block_row, block_col) >= 0;
}

std::vector<uint8_t> BlockLayout::block_mask() const {
  std::vector<uint8_t> mask(block_rows_ * block_cols_, 0);
  for (int64_t r = 0; r < block_rows_; ++r) {
    for (int64_t i = row_ptr_[r]; i < row_ptr_[r + 1]; ++i) mask[r * block_cols_ + col_idx_[i]] = 1;
  }
  return mask;
}

std::string BlockLayout::to_text() const {
  std::ostringstream out;
  const std::vector<uint8_t> mask = block_mask();
  for (int64_t r = 0; r < block_rows_; ++r) {
    for (int64_t c = 0; c < block_cols_; ++c) out << (mask[r * block_cols_ + c] ? 'X' : '.');
    out << '\n';
  }
  return out.str();
}

bool BlockLayout::operator==(const BlockLayout& other) const {
  return out_features_ == other.out_features_ && in_features_ == other.in_features_ &&
         block_ == other.block_ && row_ptr_ == other.row_ptr_ && col_idx_ == other.col_idx_;
}

}  // namespace pixelfly
