// Work lists for the tensor-core kernels (see tile_schedule.h).
#include "pixelfly/pattern/tile_schedule.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace pixelfly {
namespace {

// Groups `span` consecutive lines at a time. For line l, its entries are [ptr[l], ptr[l+1]),
// each with an index along the other dimension (idx) and a CSR block (block_of).
template <typename BlockOf>
void group_lines(int64_t lines, const std::vector<int64_t>& ptr, const std::vector<int64_t>& idx, BlockOf block_of,
                 int64_t span, std::vector<LineGroup>& groups, std::vector<int64_t>& index,
                 std::vector<int64_t>& blocks) {
  for (int64_t first = 0; first < lines; first += span) {
    const int64_t count = std::min(span, lines - first);
    std::vector<int64_t> merged;
    for (int64_t l = first; l < first + count; ++l) merged.insert(merged.end(), idx.begin() + ptr[l], idx.begin() + ptr[l + 1]);
    std::sort(merged.begin(), merged.end());
    merged.erase(std::unique(merged.begin(), merged.end()), merged.end());
    LineGroup g;
    g.first = first;
    g.count = count;
    g.index_offset = static_cast<int64_t>(index.size());
    g.length = static_cast<int64_t>(merged.size());
    g.block_offset = static_cast<int64_t>(blocks.size());
    index.insert(index.end(), merged.begin(), merged.end());
    for (int64_t l = first; l < first + count; ++l) {
      int64_t e = ptr[l];
      for (int64_t k : merged) {
        if (e < ptr[l + 1] && idx[e] == k) {
          blocks.push_back(block_of(e));
          ++e;
        } else {
          blocks.push_back(-1);
        }
      }
    }
    groups.push_back(g);
  }
}

}  // namespace

TileSchedule make_tile_schedule(const BlockLayout& layout, int64_t tile_features) {
  const int64_t b = layout.block();
  if (tile_features <= 0 || tile_features % b != 0) {
    throw std::invalid_argument("tile_features must be a positive multiple of the block size " + std::to_string(b) +
                                ", got " + std::to_string(tile_features));
  }
  const int64_t span = tile_features / b;
  TileSchedule s;
  group_lines(layout.block_rows(), layout.row_ptr(), layout.col_idx(), [](int64_t e) { return e; }, span,
              s.row_groups, s.row_index, s.row_blocks);
  const std::vector<int64_t>& transpose = layout.transpose_block();
  group_lines(layout.block_cols(), layout.col_ptr(), layout.row_idx(), [&transpose](int64_t e) { return transpose[e]; },
              span, s.col_groups, s.col_index, s.col_blocks);
  // Weight gradient: each row group's union columns, two tiles' worth at a time.
  const int64_t piece_span = 2 * span;
  for (const LineGroup& g : s.row_groups) {
    for (int64_t k0 = 0; k0 < g.length; k0 += piece_span) {
      GradientPiece p;
      p.row_first = g.first;
      p.rows = g.count;
      p.column_offset = static_cast<int64_t>(s.gradient_columns.size());
      p.cols = std::min(piece_span, g.length - k0);
      p.block_offset = static_cast<int64_t>(s.gradient_blocks.size());
      s.gradient_columns.insert(s.gradient_columns.end(), s.row_index.begin() + g.index_offset + k0,
                                s.row_index.begin() + g.index_offset + k0 + p.cols);
      for (int64_t i = 0; i < g.count; ++i) {
        const auto row = s.row_blocks.begin() + g.block_offset + i * g.length + k0;
        s.gradient_blocks.insert(s.gradient_blocks.end(), row, row + p.cols);
      }
      s.gradient_pieces.push_back(p);
    }
  }
  return s;
}

}  // namespace pixelfly
