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

void check_tile_features(const BlockLayout& layout, const char* name, int64_t features) {
  const int64_t b = layout.block();
  if (features <= 0 || features % b != 0) {
    throw std::invalid_argument(std::string(name) + " must be a positive multiple of the block size " +
                                std::to_string(b) + ", got " + std::to_string(features));
  }
}

void group_rows(const BlockLayout& layout, int64_t span, std::vector<LineGroup>& groups, std::vector<int64_t>& index,
                std::vector<int64_t>& blocks) {
  group_lines(layout.block_rows(), layout.row_ptr(), layout.col_idx(), [](int64_t e) { return e; }, span, groups,
              index, blocks);
}

void group_columns(const BlockLayout& layout, int64_t span, std::vector<LineGroup>& groups,
                   std::vector<int64_t>& index, std::vector<int64_t>& blocks) {
  const std::vector<int64_t>& transpose = layout.transpose_block();
  group_lines(layout.block_cols(), layout.col_ptr(), layout.row_idx(),
              [&transpose](int64_t e) { return transpose[e]; }, span, groups, index, blocks);
}

// The modelled time of one token tile of every group (kernel_line_tile_features): each tile's
// K stages plus two for its epilogue, times the tile's width.
double modelled_line_time(const BlockLayout& layout, bool by_columns, int64_t tile_features) {
  std::vector<LineGroup> groups;
  std::vector<int64_t> index, blocks;
  const int64_t span = tile_features / layout.block();
  if (by_columns) {
    group_columns(layout, span, groups, index, blocks);
  } else {
    group_rows(layout, span, groups, index, blocks);
  }
  int64_t stages = 0;
  for (const LineGroup& g : groups) {
    stages += std::max<int64_t>(1, (g.length * layout.block() + kKernelStepFeatures - 1) / kKernelStepFeatures) + 2;
  }
  return static_cast<double>(stages * tile_features);
}

}  // namespace

int64_t kernel_line_tile_features(const BlockLayout& layout, bool by_columns) {
  const int64_t b = layout.block();
  if (kKernelWideTileFeatures % b != 0 || kKernelTileFeatures % b != 0) return kKernelTileFeatures;
  const double narrow = modelled_line_time(layout, by_columns, kKernelTileFeatures);
  const double wide = modelled_line_time(layout, by_columns, kKernelWideTileFeatures);
  return wide < 0.97 * narrow ? kKernelWideTileFeatures : kKernelTileFeatures;
}

TileSchedule make_tile_schedule(const BlockLayout& layout) {
  return make_tile_schedule(layout, kernel_line_tile_features(layout, false), kernel_line_tile_features(layout, true));
}

TileSchedule make_tile_schedule(const BlockLayout& layout, int64_t row_tile_features, int64_t col_tile_features) {
  check_tile_features(layout, "row_tile_features", row_tile_features);
  check_tile_features(layout, "col_tile_features", col_tile_features);
  check_tile_features(layout, "the weight gradient's piece rows (kKernelTileFeatures)", kKernelTileFeatures);
  const int64_t b = layout.block();
  TileSchedule s;
  s.row_tile_features = row_tile_features;
  s.col_tile_features = col_tile_features;
  group_rows(layout, row_tile_features / b, s.row_groups, s.row_index, s.row_blocks);
  group_columns(layout, col_tile_features / b, s.col_groups, s.col_index, s.col_blocks);
  // Weight gradient: row groups of kKernelTileFeatures, each group's union columns two tiles'
  // worth at a time.
  const int64_t span = kKernelTileFeatures / b, piece_span = 2 * span;
  std::vector<LineGroup> piece_rows;
  std::vector<int64_t> piece_index, piece_blocks;
  group_rows(layout, span, piece_rows, piece_index, piece_blocks);
  for (const LineGroup& g : piece_rows) {
    for (int64_t k0 = 0; k0 < g.length; k0 += piece_span) {
      GradientPiece p;
      p.row_first = g.first;
      p.rows = g.count;
      p.column_offset = static_cast<int64_t>(s.gradient_columns.size());
      p.cols = std::min(piece_span, g.length - k0);
      p.block_offset = static_cast<int64_t>(s.gradient_blocks.size());
      s.gradient_columns.insert(s.gradient_columns.end(), piece_index.begin() + g.index_offset + k0,
                                piece_index.begin() + g.index_offset + k0 + p.cols);
      for (int64_t i = 0; i < g.count; ++i) {
        const auto row = piece_blocks.begin() + g.block_offset + i * g.length + k0;
        s.gradient_blocks.insert(s.gradient_blocks.end(), row, row + p.cols);
      }
      s.gradient_pieces.push_back(p);
    }
  }
  return s;
}

}  // namespace pixelfly
