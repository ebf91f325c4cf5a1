// Work lists for the tensor-core kernels (see tile_schedule.h).
#include "pixelfly/pattern/tile_schedule.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace pixelfly {
namespace {

// A direction's groups and their tables (the fields of TileSchedule of that name).
struct LineGrouping {
  std::vector<LineGroup> groups;
  std::vector<int64_t> index, blocks;
  // Products the kernels multiply: each group's lines times its union.
  int64_t products() const {
    int64_t sum = 0;
    for (const LineGroup& g : groups) sum += g.count * g.length;
    return sum;
  }
};

// Groups `span` consecutive lines at a time. For line l, its entries are [ptr[l], ptr[l+1]),
// each with an index along the other dimension (idx) and a CSR block (block_of).
template <typename BlockOf>
LineGrouping group_lines(int64_t lines, const std::vector<int64_t>& ptr, const std::vector<int64_t>& idx,
                         BlockOf block_of, int64_t span) {
  LineGrouping out;
  for (int64_t first = 0; first < lines; first += span) {
    const int64_t count = std::min(span, lines - first);
    std::vector<int64_t> merged;
    for (int64_t l = first; l < first + count; ++l) merged.insert(merged.end(), idx.begin() + ptr[l], idx.begin() + ptr[l + 1]);
    std::sort(merged.begin(), merged.end());
    merged.erase(std::unique(merged.begin(), merged.end()), merged.end());
    LineGroup g;
    g.first = first;
    g.count = count;
    g.index_offset = static_cast<int64_t>(out.index.size());
    g.length = static_cast<int64_t>(merged.size());
    g.block_offset = static_cast<int64_t>(out.blocks.size());
    out.index.insert(out.index.end(), merged.begin(), merged.end());
    for (int64_t l = first; l < first + count; ++l) {
      int64_t e = ptr[l];
      for (int64_t k : merged) {
        if (e < ptr[l + 1] && idx[e] == k) {
          out.blocks.push_back(block_of(e));
          ++e;
        } else {
          out.blocks.push_back(-1);
        }
      }
    }
    out.groups.push_back(g);
  }
  return out;
}

// The direction's groups of 2 span lines where they multiply at most kPairedProductsLimit times
// the products of groups of `span`, else those; `lines_per_group` says which.
template <typename BlockOf>
LineGrouping choose_groups(int64_t lines, const std::vector<int64_t>& ptr, const std::vector<int64_t>& idx,
                           BlockOf block_of, int64_t span, int64_t& lines_per_group) {
  LineGrouping narrow = group_lines(lines, ptr, idx, block_of, span);
  LineGrouping wide = group_lines(lines, ptr, idx, block_of, 2 * span);
  const bool paired =
      static_cast<double>(wide.products()) <= kPairedProductsLimit * static_cast<double>(narrow.products());
  lines_per_group = paired ? 2 * span : span;
  return paired ? wide : narrow;
}

}  // namespace

TileSchedule make_tile_schedule(const BlockLayout& layout, int64_t tile_features) {
  const int64_t b = layout.block();
  if (tile_features <= 0 || tile_features % b != 0) {
    throw std::invalid_argument("tile_features must be a positive multiple of the block size " + std::to_string(b) +
                                ", got " + std::to_string(tile_features));
  }
  const int64_t span = tile_features / b;
  auto csr_block = [](int64_t e) { return e; };
  const std::vector<int64_t>& transpose = layout.transpose_block();
  auto transposed_block = [&transpose](int64_t e) { return transpose[e]; };
  TileSchedule s;
  int64_t lines_per_group = 0;
  LineGrouping rows = choose_groups(layout.block_rows(), layout.row_ptr(), layout.col_idx(), csr_block, span,
                                    lines_per_group);
  s.row_group_features = lines_per_group * b;
  s.row_groups = rows.groups;
  s.row_index = rows.index;
  s.row_blocks = rows.blocks;
  LineGrouping cols = choose_groups(layout.block_cols(), layout.col_ptr(), layout.row_idx(), transposed_block, span,
                                    lines_per_group);
  s.col_group_features = lines_per_group * b;
  s.col_groups = std::move(cols.groups);
  s.col_index = std::move(cols.index);
  s.col_blocks = std::move(cols.blocks);
  // Weight gradient: each row group of `span` lines, its union columns two tiles' worth at a time.
  if (s.row_group_features != tile_features) {
    rows = group_lines(layout.block_rows(), layout.row_ptr(), layout.col_idx(), csr_block, span);
  }
  const int64_t piece_span = 2 * span;
  for (const LineGroup& g : rows.groups) {
    for (int64_t k0 = 0; k0 < g.length; k0 += piece_span) {
      GradientPiece p;
      p.row_first = g.first;
      p.rows = g.count;
      p.column_offset = static_cast<int64_t>(s.gradient_columns.size());
      p.cols = std::min(piece_span, g.length - k0);
      p.block_offset = static_cast<int64_t>(s.gradient_blocks.size());
      s.gradient_columns.insert(s.gradient_columns.end(), rows.index.begin() + g.index_offset + k0,
                                rows.index.begin() + g.index_offset + k0 + p.cols);
      for (int64_t i = 0; i < g.count; ++i) {
        const auto row = rows.blocks.begin() + g.block_offset + i * g.length + k0;
        s.gradient_blocks.insert(s.gradient_blocks.end(), row, row + p.cols);
      }
      s.gradient_pieces.push_back(p);
    }
  }
  return s;
}

}  // namespace pixelfly
