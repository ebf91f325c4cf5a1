// CPU kernels for block-sparse products, Y = X W^T, dX = dY W and dW = dY^T X sampled on the
// nonzero blocks. Each merged dense tile of the layout is one BLAS GEMM on strided views of the
// activations (no copies of X, Y, dY or dX); the weight's blocks are packed into tile-major
// matrices once per call. Plain pointers and sizes in: no LibTorch types.
#pragma once

#include <cstdint>

#include "pixelfly/pattern/block_layout.h"

namespace pixelfly::kernels::cpu {

// What the kernels need to know of a layout; all pointers borrowed from a BlockLayout.
struct BlockSparseShape {
  int64_t out_features = 0;
  int64_t in_features = 0;
  int64_t block = 0;
  int64_t block_rows = 0;
  int64_t nnz = 0;
  const int64_t* row_ptr = nullptr;  // block_rows + 1
  const BlockTile* tiles = nullptr;
  int64_t num_tiles = 0;
};

BlockSparseShape make_shape(const BlockLayout& layout);

// Element counts of the workspace each kernel needs (in scalars of the kernel's type).
int64_t packed_weight_elements(const BlockSparseShape& shape);

// Tile-major copy of the blocks: values (nnz, b, b) -> packed (see BlockTile::packed_offset).
template <typename T>
void pack_tiles(const BlockSparseShape& shape, const T* values, T* packed);
// The inverse: packed tiles -> values (nnz, b, b).
template <typename T>
void unpack_tiles(const BlockSparseShape& shape, const T* packed, T* values);

// y (tokens x out, row-major) = x (tokens x in) . W^T, with W given as packed tiles.
template <typename T>
void forward(const BlockSparseShape& shape, int64_t tokens, const T* x, const T* packed, T* y);

// dx (tokens x in) = dy (tokens x out) . W.
template <typename T>
void grad_input(const BlockSparseShape& shape, int64_t tokens, const T* dy, const T* packed, T* dx);

// packed_grad (packed tiles) = dy^T . x on the nonzero blocks; padded rows/columns get zeros.
template <typename T>
void grad_weight(const BlockSparseShape& shape, int64_t tokens, const T* dy, const T* x, T* packed_grad);

}  // namespace pixelfly::kernels::cpu
