// Work lists for the tensor-core kernels (see tile_schedule.h).
#include "pixelfly/pattern/tile_schedule.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>

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

// A direction's line groups of one tile width, with their index and block tables.
LineGrouping group(const BlockLayout& layout, bool by_columns, int64_t tile_features) {
  LineGrouping g;
  g.tile_features = tile_features;
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

// The modelled time of one token tile of every group (line_grouping): each tile's K steps plus
// two for its epilogue, times the tile's width.
double modelled_line_time(const LineGrouping& g, int64_t block, int64_t rank) {
  int64_t steps = 0;
  for (const LineGroup& line : g.groups) steps += line_tile_steps(line.length, block, rank) + 2;
  return static_cast<double>(steps * g.tile_features);
}

// Columns the pieces of `features` wide multiply over all of the rows' groups.
int64_t gradient_piece_columns(const LineGrouping& rows, int64_t block, int64_t features) {
  const int64_t span = features / block;
  int64_t pieces = 0;
  for (const LineGroup& g : rows.groups) pieces += (g.length + span - 1) / span;
  return pieces * features;
}

// Weight gradient: the rows' narrow groups, each group's union columns a piece's width at a time.
void add_gradient_pieces(const LineGrouping& rows, TileSchedule& s) {
  const int64_t piece_span = s.gradient_piece_features / s.block;
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
}

// The first and last of a piece's fold sets that the block column at position i of the piece spans.
std::pair<int64_t, int64_t> fold_sets_of_position(int64_t i, int64_t block) {
  return {i * block / kGradientFoldSetFeatures, ((i + 1) * block - 1) / kGradientFoldSetFeatures};
}

// One fold set per warpgroup (TileSchedule::gradient_fold_sets): greedily, block columns held by
// the fewest pieces first, each column not yet owned goes to a piece that holds it and has room
// for the sets it spans that the piece has not chosen (kGradientFoldWarpgroups per piece),
// preferring fewer new sets, then the choice whose sets span most of that piece's unowned
// columns, then the piece with more room; a piece owns every unowned column its chosen sets span.
// False where a column finds no such piece. (On the flat butterfly layouts of 20 shapes, blocks
// 16-128, n 2-64, every k, it succeeds on 1405 of 1680; 224 of the rest have fewer warpgroups
// than x has sets.)
bool assign_one_fold_set_per_warpgroup(TileSchedule& s, int64_t block_cols) {
  const int64_t b = s.block, pieces = static_cast<int64_t>(s.gradient_pieces.size());
  std::vector<int64_t> piece_of(s.gradient_columns.size());
  for (int64_t p = 0; p < pieces; ++p) {
    const GradientPiece& piece = s.gradient_pieces[p];
    std::fill_n(piece_of.begin() + piece.column_offset, piece.cols, p);
  }
  std::vector<std::vector<int64_t>> holders(static_cast<size_t>(block_cols));  // positions in gradient_columns
  for (size_t at = 0; at < s.gradient_columns.size(); ++at) holders[s.gradient_columns[at]].push_back(at);
  std::vector<int64_t> order(static_cast<size_t>(block_cols));
  for (int64_t c = 0; c < block_cols; ++c) order[c] = c;
  std::stable_sort(order.begin(), order.end(),
                   [&holders](int64_t x, int64_t y) { return holders[x].size() < holders[y].size(); });
  std::vector<std::vector<int64_t>> chosen(static_cast<size_t>(pieces));
  std::vector<bool> owned(static_cast<size_t>(block_cols), false);
  std::vector<int64_t> owner(s.gradient_columns.size(), 0);
  // The sets that the block column at position i of a piece spans beyond `sets`.
  auto missing = [b](const std::vector<int64_t>& sets, int64_t i) {
    std::vector<int64_t> m;
    const auto [first, last] = fold_sets_of_position(i, b);
    for (int64_t set = first; set <= last; ++set) {
      if (std::find(sets.begin(), sets.end(), set) == sets.end()) m.push_back(set);
    }
    return m;
  };
  // The positions in gradient_columns of `piece`'s unowned block columns that `sets` span.
  auto spanned = [&](const GradientPiece& piece, const std::vector<int64_t>& sets) {
    std::vector<int64_t> positions;
    for (int64_t i = 0; i < piece.cols; ++i) {
      const int64_t at = piece.column_offset + i;
      if (!owned[s.gradient_columns[at]] && missing(sets, i).empty()) positions.push_back(at);
    }
    return positions;
  };
  for (const int64_t column : order) {
    if (owned[column] || holders[column].empty()) continue;  // owned, or a column without blocks
    int64_t best = -1, best_new = 0, best_room = 0;
    std::vector<int64_t> best_sets, best_spanned;
    for (const int64_t at : holders[column]) {
      const int64_t p = piece_of[at];
      const GradientPiece& piece = s.gradient_pieces[p];
      std::vector<int64_t> sets = chosen[p];
      const std::vector<int64_t> added = missing(sets, at - piece.column_offset);
      sets.insert(sets.end(), added.begin(), added.end());
      const int64_t room = kGradientFoldWarpgroups - static_cast<int64_t>(sets.size());
      if (room < 0) continue;
      std::vector<int64_t> spans = spanned(piece, sets);
      const int64_t added_count = static_cast<int64_t>(added.size());
      if (best < 0 || added_count < best_new || (added_count == best_new && spans.size() > best_spanned.size()) ||
          (added_count == best_new && spans.size() == best_spanned.size() && room > best_room)) {
        best = p, best_new = added_count, best_room = room;
        best_sets = std::move(sets);
        best_spanned = std::move(spans);
      }
    }
    if (best < 0) return false;
    chosen[best] = std::move(best_sets);
    for (const int64_t at : best_spanned) {
      owned[s.gradient_columns[at]] = true;
      owner[at] = 1;
    }
  }
  s.gradient_fold_products = 1;
  s.gradient_fold_sets.assign(static_cast<size_t>(pieces * kGradientFoldWarpgroups * kMaxGradientFoldProducts), -1);
  for (int64_t p = 0; p < pieces; ++p) {
    std::sort(chosen[p].begin(), chosen[p].end());
    for (size_t w = 0; w < chosen[p].size(); ++w) {
      s.gradient_fold_sets[(kGradientFoldWarpgroups * p + static_cast<int64_t>(w)) * kMaxGradientFoldProducts] =
          chosen[p][w];
    }
  }
  s.gradient_column_owner = std::move(owner);
  return true;
}

// Two fold sets per warpgroup, which cover every set of a piece: warpgroup w multiplies sets w
// and w + 2 (-1 past the piece's sets), each column owned by the first piece that holds it.
void assign_fold_sets_to_first_holders(TileSchedule& s, int64_t block_cols) {
  static_assert(kGradientFoldWarpgroups * kMaxGradientFoldProducts * kGradientFoldSetFeatures >= kGradientPieceFeatures,
                "two sets per warpgroup cover a piece");
  const int64_t sets = s.gradient_piece_features / kGradientFoldSetFeatures;
  s.gradient_fold_products = kMaxGradientFoldProducts;
  s.gradient_fold_sets.clear();
  for (size_t p = 0; p < s.gradient_pieces.size(); ++p) {
    for (int64_t w = 0; w < kGradientFoldWarpgroups; ++w) {
      for (int64_t j = 0; j < kMaxGradientFoldProducts; ++j) {
        const int64_t set = w + kGradientFoldWarpgroups * j;
        s.gradient_fold_sets.push_back(set < sets ? set : -1);
      }
    }
  }
  std::vector<bool> owned(static_cast<size_t>(block_cols), false);
  s.gradient_column_owner.clear();
  for (const int64_t column : s.gradient_columns) {
    s.gradient_column_owner.push_back(owned[column] ? 0 : 1);
    owned[column] = true;
  }
}

}  // namespace

TileSchedule make_tile_schedule(const BlockLayout& layout) {
  const int64_t b = layout.block();
  if (kKernelTileFeatures % b != 0) {
    throw std::invalid_argument("tile schedule: the block size " + std::to_string(b) +
                                " must divide the kernels' tile of " + std::to_string(kKernelTileFeatures) +
                                " features");
  }
  TileSchedule s;
  s.block = b;
  s.rows = group(layout, false, kKernelTileFeatures);
  s.cols = group(layout, true, kKernelTileFeatures);
  if (kKernelWideTileFeatures % b == 0) {
    s.wide_rows = group(layout, false, kKernelWideTileFeatures);
    s.wide_cols = group(layout, true, kKernelWideTileFeatures);
  }
  s.gradient_piece_features = gradient_piece_features(s.rows, b);
  add_gradient_pieces(s.rows, s);
  if (!assign_one_fold_set_per_warpgroup(s, layout.block_cols())) {
    assign_fold_sets_to_first_holders(s, layout.block_cols());
  }
  std::vector<bool> held(static_cast<size_t>(layout.block_cols()), false);
  for (const int64_t column : s.gradient_columns) held[column] = true;
  s.gradient_columns_cover_inputs = std::find(held.begin(), held.end(), false) == held.end();
  const int64_t piece_span = s.gradient_piece_features / b;
  s.gradient_pieces_cover_rows_once =
      std::all_of(s.rows.groups.begin(), s.rows.groups.end(),
                  [piece_span](const LineGroup& g) { return g.length >= 1 && g.length <= piece_span; });
  const int64_t run = std::max<int64_t>(1, kGradientXRunFeatures / b);
  auto in_runs = [&s, run](const GradientPiece& p) {
    if (p.cols % run != 0) return false;
    for (int64_t k = 0; k < p.cols; ++k) {
      const int64_t run_first = p.column_offset + k - k % run;
      if (s.gradient_columns[p.column_offset + k] != s.gradient_columns[run_first] + k % run) return false;
    }
    return true;
  };
  s.gradient_columns_in_runs_of_64 = std::all_of(s.gradient_pieces.begin(), s.gradient_pieces.end(), in_runs);
  return s;
}

int64_t gradient_piece_features(const LineGrouping& rows, int64_t block) {
  if (kNarrowGradientPieceFeatures % block != 0) return kGradientPieceFeatures;
  return gradient_piece_columns(rows, block, kNarrowGradientPieceFeatures) <
                 gradient_piece_columns(rows, block, kGradientPieceFeatures)
             ? kNarrowGradientPieceFeatures
             : kGradientPieceFeatures;
}

const LineGrouping& line_grouping(const TileSchedule& schedule, bool by_columns, int64_t rank) {
  const LineGrouping& narrow = by_columns ? schedule.cols : schedule.rows;
  const LineGrouping& wide = by_columns ? schedule.wide_cols : schedule.wide_rows;
  if (wide.tile_features == 0) return narrow;
  return modelled_line_time(wide, schedule.block, rank) <= modelled_line_time(narrow, schedule.block, rank) ? wide
                                                                                                          : narrow;
}

int64_t kernel_line_tile_features(const BlockLayout& layout, bool by_columns, int64_t rank) {
  return line_grouping(make_tile_schedule(layout), by_columns, rank).tile_features;
}

}  // namespace pixelfly
