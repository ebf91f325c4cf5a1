// CUDA kernels for block-sparse products, Y = X W^T, dX = dY W and dW = dY^T X on the nonzero
// blocks: plain parameter structs in, no LibTorch types, so this target compiles wherever nvcc
// does. Float32 accumulation for every storage type. Block sizes 16, 32, 64 and 128.
//
// float16 and bfloat16 with feature counts divisible by 8 run on Hopper's tensor cores (warpgroup
// MMA over the layout's tile schedule, fed by TMA copies; sm_90a builds on compute capability
// 9.0; the matrices' base addresses 16-byte aligned); float32, other shapes and other GPUs run
// on a plain shared-memory kernel on CUDA cores.
// Every output element is written exactly once.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "pixelfly/pattern/tile_schedule.h"

namespace pixelfly::kernels::cuda {

enum class ScalarKind { Float32, Float16, BFloat16 };

// The layout's indexes, all in device memory (built once per layout and device).
struct DeviceLayout {
  int64_t out_features = 0;
  int64_t in_features = 0;
  int64_t block = 0;
  int64_t block_rows = 0;
  int64_t block_cols = 0;
  int64_t nnz = 0;
  const int64_t* row_ptr = nullptr;          // block_rows + 1
  const int64_t* col_idx = nullptr;          // nnz
  const int64_t* col_ptr = nullptr;          // block_cols + 1
  const int64_t* row_idx = nullptr;          // nnz, transpose order
  const int64_t* transpose_block = nullptr;  // nnz, transpose order -> CSR block index
  const int64_t* block_row = nullptr;        // nnz, CSR order -> block row
  // The tile schedule (pattern/tile_schedule.h) flattened: 5 int64 per LineGroup (first, count,
  // index_offset, length, block_offset) and per GradientPiece (row_first, rows, column_offset,
  // cols, block_offset), with their index and block tables. The row and column groupings are the
  // ones line_grouping picks for the call's low-rank term, with their tiles' features
  // (kKernelTileFeatures or kKernelWideTileFeatures).
  const int64_t* row_groups = nullptr;
  int64_t num_row_groups = 0;
  int64_t row_tile_features = kKernelTileFeatures;
  const int64_t* row_index = nullptr;
  const int64_t* row_blocks = nullptr;
  const int64_t* col_groups = nullptr;
  int64_t num_col_groups = 0;
  int64_t col_tile_features = kKernelTileFeatures;
  const int64_t* col_index = nullptr;
  const int64_t* col_blocks = nullptr;
  const int64_t* gradient_pieces = nullptr;
  int64_t num_gradient_pieces = 0;
  int64_t gradient_piece_features = kGradientPieceFeatures;  // or kNarrowGradientPieceFeatures
  const int64_t* gradient_columns = nullptr;
  const int64_t* gradient_blocks = nullptr;
  // v's fold (TileSchedule): the warpgroups' sets (pieces x 2 x 2), the products per warpgroup,
  // and beside gradient_columns 1 where the piece adds that column's rows.
  const int64_t* gradient_fold_sets = nullptr;
  int64_t gradient_fold_products = kMaxGradientFoldProducts;
  const int64_t* gradient_column_owner = nullptr;
  bool gradient_columns_cover_inputs = false;      // every block column has an owner
  bool gradient_pieces_cover_rows_once = false;    // every row group is one piece
  bool gradient_columns_in_runs_of_64 = false;     // every piece's columns in 64-feature runs
};

bool supports_block(int64_t block);

// What the tensor-core forward and grad_input kernels can fold into one pass, the mix of
// PixelflyLinear with weight g:
//   forward     y  = g * (x W^T) + (1 - g) * a b^T + bias   a: tokens x rank, b: out x rank
//   grad_input  dx = g * (dy W)  + (1 - g) * a b            a: tokens x rank, b: rank x in
//                                                          (low_rank_beside: b^T, in x rank)
// g is a device scalar of type mix_kind, or with mix_logit g = sigmoid of that scalar (the mix
// as PixelflyLinear trains it, no launch for the sigmoid); with mix null both terms have weight 1.
// rank 0 means no low-rank term; bias (out, 16-byte aligned: copied in 16-byte pieces) may be
// null. Row-major matrices in the kernel's storage type: a with `low_rank_a_pitch` elements from
// one row to the next (a multiple of 8, at least rank), the others contiguous. The weights are
// applied to the accumulators, so the caller passes a and b as they are.
struct Epilogue {
  const void* mix = nullptr;
  ScalarKind mix_kind = ScalarKind::Float32;
  bool mix_logit = false;
  const void* low_rank_a = nullptr;
  int64_t low_rank_a_pitch = 0;
  const void* low_rank_b = nullptr;
  int64_t rank = 0;
  const void* bias = nullptr;
  // The low-rank term multiplied beside the K loop's ring of stages rather than as its last
  // chunks (where launch_shape.h's low_rank_beside_pays says; block 32 and rank 1..32 only).
  bool low_rank_beside = false;
};

// The order in which the tensor-core forward or grad_input kernel deals its tiles of `tokens`
// tokens over the current device's thread blocks (group_lengths: the union lengths of the groups
// line_grouping picks for the call's rank; ring_rank: the low-rank columns its ring of stages
// carries, the rank or 0 with the term beside it): offsets then tiles (launch_shape.h,
// balanced_tile_order), largest tiles first to the least loaded block. Built on the host once
// per layout, token count and rank; the caller copies it to the device and passes it to the
// calls below as `order`, which may also be null (tiles dealt round-robin).
std::vector<int32_t> line_tile_order(const std::vector<int64_t>& group_lengths, int64_t block, int64_t ring_rank,
                                     int64_t tokens);

// True when the fused kernels run this layout, dtype and rank (the tensor-core conditions above,
// and a rank that is a multiple of 8).
bool supports_epilogue(const DeviceLayout& layout, ScalarKind kind, int64_t rank);
cudaError_t forward_fused(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* x,
                          const void* values, const Epilogue& epilogue, void* y, const int32_t* order,
                          cudaStream_t stream);
cudaError_t grad_input_fused(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy,
                             const void* values, const Epilogue& epilogue, void* dx, const int32_t* order,
                             cudaStream_t stream);

// y (tokens x out) = x (tokens x in) . W^T; values (nnz, b, b). Row-major, contiguous. `order`
// as above (used by the tensor-core kernel only).
cudaError_t forward(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* x,
                    const void* values, void* y, const int32_t* order, cudaStream_t stream);
// dx (tokens x in) = dy (tokens x out) . W.
cudaError_t grad_input(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy,
                       const void* values, void* dx, const int32_t* order, cudaStream_t stream);
// grad_values (nnz, b, b) = dy^T . x on the nonzero blocks (zeros in padding). `workspace` is
// float32 scratch of grad_weight_workspace_elements() elements (may be null when that is 0).
cudaError_t grad_weight(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy,
                        const void* x, void* grad_values, float* workspace, cudaStream_t stream);
int64_t grad_weight_workspace_elements(const DeviceLayout& layout, ScalarKind kind);
// A product over every input feature that rides along in accumulate_grad_weight's pass over x:
// v_sums (in_features x rank, float32, zeroed by the caller) += x^T a, a (tokens x rank, the
// storage type, rows `a_pitch` elements apart). PixelflyLinear's v gradient before its mix
// weight, a = dy u.
struct GradientFold {
  const void* a = nullptr;
  int64_t a_pitch = 0;
  int64_t rank = 0;
  float* v_sums = nullptr;
};
// Whether accumulate_grad_weight takes a GradientFold of `rank` for this layout, dtype and token
// count: tensor cores, a rank that is a multiple of 8 and at most kMaxGradientFoldRank, every
// block column in some piece (owners for every input feature), and token splits that add into
// the sums (the cluster exchange has no room for the fold's accumulators).
constexpr int64_t kMaxGradientFoldRank = 32;
bool can_fold_into_grad_weight(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, int64_t rank);
// PixelflyLinear's two products against its low-rank factors, riding along in
// accumulate_grad_weight's pass over dy (the pieces then read each row of dy once):
//   dy_u_sums (tokens x kMaxGradientFoldRank, float32) += dy u  (columns past the rank get zeros)
//   product   (out_features x product_pitch, float32)  += dy^T a in columns 0 .. rank - 1, and with
//                                                        `ones` dy's sums over the tokens in column rank
// both zeroed by the caller; u (out_features x rank) contiguous and a (tokens x rank, rows a_pitch
// elements apart, a multiple of 8) in the storage type. PixelflyLinear's a = x v.
struct GradientLowRank {
  const void* u = nullptr;
  const void* a = nullptr;
  int64_t a_pitch = 0;
  int64_t rank = 0;
  float* dy_u_sums = nullptr;
  float* product = nullptr;
  int64_t product_pitch = 0;
  bool ones = false;
};
// Whether accumulate_grad_weight takes a GradientLowRank of `rank` for this layout, dtype and token
// count: tensor cores, a rank that is a multiple of 8 and at most kMaxGradientFoldRank, pieces of
// kNarrowGradientPieceFeatures that read each row of dy once (every row group one piece), and
// token splits that add into the sums.
bool can_take_low_rank_into_grad_weight(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, int64_t rank);
// The tensor-core part of grad_weight alone: dy^T . x on the nonzero blocks into `sums`
// (float32, grad_weight_workspace_elements() of them, zeroed by the caller: the token splits are
// stored once or added into them), left unrounded for a later pass, and with `fold` (non-null
// only where can_fold_into_grad_weight) or `low_rank` (non-null only where
// can_take_low_rank_into_grad_weight; not both) their products in the same pass.
// cudaErrorInvalidValue where that count is 0 (no tensor-core path).
cudaError_t accumulate_grad_weight(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy,
                                   const void* x, float* sums, const GradientFold* fold,
                                   const GradientLowRank* low_rank, cudaStream_t stream);
// out (`elements` of float16 or bfloat16, `kind`) = in (float32) rounded to nearest, one pass:
// the last step of the kernels that sum in float32 across thread blocks.
cudaError_t round_to_storage(ScalarKind kind, const float* in, void* out, int64_t elements, cudaStream_t stream);

}  // namespace pixelfly::kernels::cuda
