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

// A direction's line groups of one tile width, with their index and block tables.
struct Grouping {
  std::vector<LineGroup> groups;
  std::vector<int64_t> index, blocks;
};

Grouping group(const BlockLayout& layout, bool by_columns, int64_t tile_features) {
  Grouping g;
  const int64_t span = tile_features / layout.block();
  if (by_columns) {
    const std::vector<int64_t>& transpose = layout.transpose_block();
    group_lines(layout.block_cols(), layout.col_ptr(), layout.row_idx(),
                [&transpose](int64_t e) { return transpose[e]; }, span, g.groups, g.index, g.blocks);
  } else {
    group_lines(layout.block_rows(), layout.row_ptr(), layout.col_idx(), [](int64_t e) { return e; }, span, g.groups,
                g.index, g.blocks);
  }
  return g;
}

// The modelled time of one token tile of every group (kernel_line_tile_features): each tile's
// K stages plus two for its epilogue, times the tile's width.
double modelled_line_time(const BlockLayout& layout, const Grouping& g, int64_t tile_features) {
  int64_t stages = 0;
  for (const LineGroup& line : g.groups) {
    stages += std::max<int64_t>(1, (line.length * layout.block() + kKernelStepFeatures - 1) / kKernelStepFeatures) + 2;
  }
  return static_cast<double>(stages * tile_features);
}

bool wide_tiles_apply(const BlockLayout& layout) {
  return kKernelWideTileFeatures % layout.block() == 0 && kKernelTileFeatures % layout.block() == 0;
}

// Of a direction's narrow and wide groupings, the one kernel_line_tile_features picks.
bool wide_wins(const BlockLayout& layout, const Grouping& narrow, const Grouping& wide) {
  return modelled_line_time(layout, wide, kKernelWideTileFeatures) <
         0.97 * modelled_line_time(layout, narrow, kKernelTileFeatures);
}

// The schedule of line groupings already built; the weight gradient's pieces come from the rows'
// narrow grouping.
TileSchedule assemble(const BlockLayout& layout, int64_t row_tile_features, Grouping rows, int64_t col_tile_features,
                      Grouping cols, const Grouping& narrow_rows) {
  TileSchedule s;
  s.row_tile_features = row_tile_features;
  s.col_tile_features = col_tile_features;
  s.row_groups = std::move(rows.groups);
  s.row_index = std::move(rows.index);
  s.row_blocks = std::move(rows.blocks);
  s.col_groups = std::move(cols.groups);
  s.col_index = std::move(cols.index);
  s.col_blocks = std::move(cols.blocks);
  // Weight gradient: row groups of kKernelTileFeatures, each group's union columns two tiles'
  // worth at a time.
  const int64_t piece_span = 2 * kKernelTileFeatures / layout.block();
  for (const LineGroup& g : narrow_rows.groups) {
    for (int64_t k0 = 0; k0 < g.length; k0 += piece_span) {
      GradientPiece p;
      p.row_first = g.first;
      p.rows = g.count;
      p.column_offset = static_cast<int64_t>(s.gradient_columns.size());
      p.cols = std::min(piece_span, g.length - k0);
      p.block_offset = static_cast<int64_t>(s.gradient_blocks.size());
      s.gradient_columns.insert(s.gradient_columns.end(), narrow_rows.index.begin() + g.index_offset + k0,
                                narrow_rows.index.begin() + g.index_offset + k0 + p.cols);
      for (int64_t i = 0; i < g.count; ++i) {
        const auto row = narrow_rows.blocks.begin() + g.block_offset + i * g.length + k0;
        s.gradient_blocks.insert(s.gradient_blocks.end(), row, row + p.cols);
      }
      s.gradient_pieces.push_back(p);
    }
  }
  return s;
}

}  // namespace

int64_t kernel_line_tile_features(const BlockLayout& layout, bool by_columns) {
  if (!wide_tiles_apply(layout)) return kKernelTileFeatures;
  return wide_wins(layout, group(layout, by_columns, kKernelTileFeatures), group(layout, by_columns, kKernelWideTileFeatures))
             ? kKernelWideTileFeatures
             : kKernelTileFeatures;
}

TileSchedule make_tile_schedule(const BlockLayout& layout) {
  check_tile_features(layout, "the kernels' tile (kKernelTileFeatures)", kKernelTileFeatures);
  Grouping narrow[2] = {group(layout, false, kKernelTileFeatures), group(layout, true, kKernelTileFeatures)};
  Grouping chosen[2];
  int64_t features[2] = {kKernelTileFeatures, kKernelTileFeatures};
  for (const bool by_columns : {false, true}) {
    Grouping wide;
    if (wide_tiles_apply(layout)) wide = group(layout, by_columns, kKernelWideTileFeatures);
    if (wide_tiles_apply(layout) && wide_wins(layout, narrow[by_columns], wide)) {
      chosen[by_columns] = std::move(wide);
      features[by_columns] = kKernelWideTileFeatures;
    } else {
      chosen[by_columns] = narrow[by_columns];
    }
  }
  return assemble(layout, features[0], std::move(chosen[0]), features[1], std::move(chosen[1]), narrow[0]);
}

TileSchedule make_tile_schedule(const BlockLayout& layout, int64_t row_tile_features, int64_t col_tile_features) {
  check_tile_features(layout, "row_tile_features", row_tile_features);
  check_tile_features(layout, "col_tile_features", col_tile_features);
  check_tile_features(layout, "the weight gradient's piece rows (kKernelTileFeatures)", kKernelTileFeatures);
  Grouping rows = group(layout, false, row_tile_features);
  const Grouping narrow_rows = row_tile_features == kKernelTileFeatures ? rows : group(layout, false, kKernelTileFeatures);
  return assemble(layout, row_tile_features, std::move(rows), col_tile_features, group(layout, true, col_tile_features),
                  narrow_rows);
}

}  // namespace pixelfly
