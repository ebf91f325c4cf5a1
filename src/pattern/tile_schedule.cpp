// Work lists for tensor-core kernels (see tile_schedule.h).
#include "pixelfly/pattern/tile_schedule.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace pixelfly {
namespace {

// Groups consecutive lines with equal index lists, at most `max_lines` per group.
std::vector<LineGroup> group_lines(int64_t lines, const std::vector<int64_t>& ptr, const std::vector<int64_t>& idx,
                                   int64_t max_lines) {
  std::vector<LineGroup> groups;
  int64_t line = 0;
  while (line < lines) {
    const int64_t per_line = ptr[line + 1] - ptr[line];
    int64_t end = line + 1;
    while (end < lines && end - line < max_lines &&
           std::equal(idx.begin() + ptr[line], idx.begin() + ptr[line + 1], idx.begin() + ptr[end],
                      idx.begin() + ptr[end + 1])) {
      ++end;
    }
    groups.push_back({line, end - line, ptr[line], per_line});
    line = end;
  }
  return groups;
}

}  // namespace

TileSchedule make_tile_schedule(const BlockLayout& layout, int64_t tile_features) {
  const int64_t b = layout.block();
  if (tile_features <= 0 || tile_features % b != 0) {
    throw std::invalid_argument("tile_features must be a positive multiple of the block size " + std::to_string(b) +
                                ", got " + std::to_string(tile_features));
  }
  const int64_t span = tile_features / b;
  TileSchedule schedule;
  schedule.row_groups = group_lines(layout.block_rows(), layout.row_ptr(), layout.col_idx(), span);
  schedule.col_groups = group_lines(layout.block_cols(), layout.col_ptr(), layout.row_idx(), span);
  for (const BlockTile& tile : layout.tiles()) {
    const int64_t stride = layout.row_count(tile.row_begin);
    for (int64_t r = tile.row_begin; r < tile.row_end; r += span) {
      for (int64_t c = tile.col_begin; c < tile.col_end; c += span) {
        GradientPiece piece;
        piece.row_begin = r;
        piece.rows = std::min(span, tile.row_end - r);
        piece.col_begin = c;
        piece.cols = std::min(span, tile.col_end - c);
        piece.base = layout.row_ptr()[r] + tile.offset_in_row + (c - tile.col_begin);
        piece.row_stride = stride;
        schedule.gradient_pieces.push_back(piece);
      }
    }
  }
  return schedule;
}

}  // namespace pixelfly
