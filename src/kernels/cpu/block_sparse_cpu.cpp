// CPU block-sparse kernels: one BLAS GEMM per merged dense tile on strided activation views.
#include "kernels/cpu/block_sparse_cpu.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/blas.h"

namespace pixelfly::kernels::cpu {
namespace {

// Element extent of a tile, clipped to the real (unpadded) matrix.
struct TileExtent {
  int64_t row0, col0;  // first output feature, first input feature
  int rows, cols;      // real rows (<= tile rows * b) and columns (<= tile cols * b)
  int ld;              // leading dimension of the packed tile: tile cols * b
};

TileExtent extent(const BlockSparseShape& s, const BlockTile& t) {
  TileExtent e;
  e.row0 = t.row_begin * s.block;
  e.col0 = t.col_begin * s.block;
  e.rows = static_cast<int>(std::min(t.row_end * s.block, s.out_features) - e.row0);
  e.cols = static_cast<int>(std::min(t.col_end * s.block, s.in_features) - e.col0);
  e.ld = static_cast<int>(t.cols() * s.block);
  return e;
}

bool first_tile_of_row_group(const BlockSparseShape& s, int64_t t) {
  return t == 0 || s.tiles[t - 1].row_begin != s.tiles[t].row_begin;
}

}  // namespace

BlockSparseShape make_shape(const BlockLayout& layout) {
  BlockSparseShape s;
  s.out_features = layout.out_features();
  s.in_features = layout.in_features();
  s.block = layout.block();
  s.block_rows = layout.block_rows();
  s.nnz = layout.nnz();
  s.row_ptr = layout.row_ptr().data();
  s.tiles = layout.tiles().data();
  s.num_tiles = static_cast<int64_t>(layout.tiles().size());
  return s;
}

int64_t packed_weight_elements(const BlockSparseShape& shape) {
  return shape.nnz * shape.block * shape.block;
}

template <typename T>
void pack_tiles(const BlockSparseShape& s, const T* values, T* packed) {
  const int64_t b = s.block;
  for (int64_t t = 0; t < s.num_tiles; ++t) {
    const BlockTile& tile = s.tiles[t];
    const int64_t ld = tile.cols() * b;
    for (int64_t rr = 0; rr < tile.rows(); ++rr) {
      const int64_t first = s.row_ptr[tile.row_begin + rr] + tile.offset_in_row;
      for (int64_t j = 0; j < tile.cols(); ++j) {
        const T* src = values + (first + j) * b * b;
        T* dst = packed + tile.packed_offset + rr * b * ld + j * b;
        for (int64_t i = 0; i < b; ++i) std::memcpy(dst + i * ld, src + i * b, b * sizeof(T));
      }
    }
  }
}

template <typename T>
void unpack_tiles(const BlockSparseShape& s, const T* packed, T* values) {
  const int64_t b = s.block;
  for (int64_t t = 0; t < s.num_tiles; ++t) {
    const BlockTile& tile = s.tiles[t];
    const int64_t ld = tile.cols() * b;
    for (int64_t rr = 0; rr < tile.rows(); ++rr) {
      const int64_t first = s.row_ptr[tile.row_begin + rr] + tile.offset_in_row;
      for (int64_t j = 0; j < tile.cols(); ++j) {
        const T* src = packed + tile.packed_offset + rr * b * ld + j * b;
        T* dst = values + (first + j) * b * b;
        for (int64_t i = 0; i < b; ++i) std::memcpy(dst + i * b, src + i * ld, b * sizeof(T));
      }
    }
  }
}

template <typename T>
void forward(const BlockSparseShape& s, int64_t tokens, const T* x, const T* packed, T* y) {
  if (tokens == 0) return;
  // Output features of block rows with no nonzero block are zero.
  for (int64_t r = 0; r < s.block_rows; ++r) {
    if (s.row_ptr[r + 1] != s.row_ptr[r]) continue;
    const int64_t f0 = r * s.block, f1 = std::min((r + 1) * s.block, s.out_features);
    for (int64_t n = 0; n < tokens; ++n) std::fill(y + n * s.out_features + f0, y + n * s.out_features + f1, T(0));
  }
  const int n = static_cast<int>(tokens);
  const int ldx = static_cast<int>(s.in_features), ldy = static_cast<int>(s.out_features);
  for (int64_t t = 0; t < s.num_tiles; ++t) {
    const TileExtent e = extent(s, s.tiles[t]);
    const T beta = first_tile_of_row_group(s, t) ? T(0) : T(1);
    // Column-major: Y^T[rows, :] (+)= W_tile (rows x cols) . X^T[cols, :]
    gemm('T', 'N', e.rows, n, e.cols, T(1), packed + s.tiles[t].packed_offset, e.ld, x + e.col0,
         ldx, beta, y + e.row0, ldy);
  }
}

template <typename T>
void grad_input(const BlockSparseShape& s, int64_t tokens, const T* dy, const T* packed, T* dx) {
  if (tokens == 0) return;
  std::fill(dx, dx + tokens * s.in_features, T(0));
  const int n = static_cast<int>(tokens);
  const int ldx = static_cast<int>(s.in_features), ldy = static_cast<int>(s.out_features);
  for (int64_t t = 0; t < s.num_tiles; ++t) {
    const TileExtent e = extent(s, s.tiles[t]);
    // Column-major: dX^T[cols, :] += W_tile^T (cols x rows) . dY^T[rows, :]
    gemm('N', 'N', e.cols, n, e.rows, T(1), packed + s.tiles[t].packed_offset, e.ld, dy + e.row0,
         ldy, T(1), dx + e.col0, ldx);
  }
}

template <typename T>
void grad_weight(const BlockSparseShape& s, int64_t tokens, const T* dy, const T* x, T* packed_grad) {
  // Padding rows/columns of edge tiles, and everything when there are no tokens, stay zero.
  std::fill(packed_grad, packed_grad + packed_weight_elements(s), T(0));
  if (tokens == 0) return;
  const int k = static_cast<int>(tokens);
  const int ldx = static_cast<int>(s.in_features), ldy = static_cast<int>(s.out_features);
  for (int64_t t = 0; t < s.num_tiles; ++t) {
    const TileExtent e = extent(s, s.tiles[t]);
    // Column-major: dW_tile^T (cols x rows) = X^T[cols, :] . dY[:, rows]
    gemm('N', 'T', e.cols, e.rows, k, T(1), x + e.col0, ldx, dy + e.row0, ldy, T(0),
         packed_grad + s.tiles[t].packed_offset, e.ld);
  }
}

#define PIXELFLY_INSTANTIATE(T)                                                                   \
  template void pack_tiles<T>(const BlockSparseShape&, const T*, T*);                             \
  template void unpack_tiles<T>(const BlockSparseShape&, const T*, T*);                           \
  template void forward<T>(const BlockSparseShape&, int64_t, const T*, const T*, T*);             \
  template void grad_input<T>(const BlockSparseShape&, int64_t, const T*, const T*, T*);          \
  template void grad_weight<T>(const BlockSparseShape&, int64_t, const T*, const T*, T*);
PIXELFLY_INSTANTIATE(float)
PIXELFLY_INSTANTIATE(double)
#undef PIXELFLY_INSTANTIATE

}  // namespace pixelfly::kernels::cpu
