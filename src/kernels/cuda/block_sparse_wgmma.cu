// Hopper (sm_90a) block-sparse kernels on warpgroup MMA (see block_sparse_wgmma.cuh).
//
// Warp-specialised: a thread block has producer warps (two or three in forward and grad_input,
// each filling its own share of the stages; one in grad_weight, in a warpgroup of its own with the
// layer's fold of x^T (dy u), GradientConfig) and two consumer warpgroups and
// computes 256-token x 128-feature or x 192-feature tiles (forward, grad_input; the width is
// that of the grouping the caller chose, tile_schedule.h: line_grouping) or 128 x 256 (128 x 192)
// weight-gradient pieces (the layout's schedule chooses), each warpgroup two wgmma.m64n128k16
// (one m64n192k16) products per K slice (both operands in shared memory, float32 accumulators
// in registers). The producer fills a ring of 64-deep K stages with
// TMA box copies, each stage completing on an mbarrier by transaction count; the consumers
// release a stage through a second mbarrier once its products are done, keeping one stage's
// products in flight while they wait for the next. The producer reads the tiles' metadata (tile
// numbers, group records, index lists) ahead of the copies that need it and hands each tile's
// record to the consumers in shared memory. One block per multiprocessor: the wide tiles
// move 17-24 % fewer bytes through L2 per result than 128 x 128 ones at two blocks.
//   forward     Y[tokens, group features]  = X . W^T   A = X (K-major), B = W blocks (K-major)
//   grad_input  dX[tokens, group features] = dY . W    A = dY (K-major), B = W blocks (N-major)
//   grad_weight dW[piece rows, piece cols] = dY^T . X  A = dY (M-major), B = X (N-major)
// A stage is made of C-wide chunks, C = min(block, 64), each landing in the C * 2-byte swizzled
// layout that wgmma reads directly: K walks the group's union index list (a line without a
// block at a union position copies a box placed outside the weight matrix, which TMA fills with
// zeros), and the low-rank term as extra K chunks (before or after the union's, see LineTile).
// The chunks of a stage past the end of both terms are copied the same way, as zeros,
// and multiplied: skipping them would be a data-dependent branch around wgmma, for which ptxas
// serialises the products (its C7520 note; 2-18 % slower, docs/perf.md version 10). Rows,
// features and tokens past the ends of the matrices read as zeros, and output tiles go back
// through TMA stores, which clip at the ends; the caller's tensors need no padding. forward and
// grad_input run persistent (LineConfig below); grad_weight splits its token reduction over
// blocks, summed in a thread-block cluster's shared memory where a piece's splits fit one, else
// added into a float32 workspace.
#include "kernels/cuda/block_sparse_wgmma.cuh"

#include "kernels/cuda/device_primitives.cuh"
#include "kernels/cuda/launch_shape.h"
#include "kernels/cuda/tensor_map.h"
#include "kernels/cuda/wgmma_primitives.cuh"

#include <array>
#include <atomic>
#include <type_traits>

namespace pixelfly::kernels::cuda::wgmma {
namespace {

using device::barrier_arrive;
using device::barrier_arrive_expect;
using device::barrier_wait;
using device::smem_address;
using device::tma_load;

constexpr int kTile = 128;  // features of a line tile; rows and columns of a weight-gradient piece
constexpr int kWideTile = 192;  // features of a wide line tile
static_assert(kTile == kKernelTileFeatures && kWideTile == kKernelWideTileFeatures,
              "the schedule must be built for this kernel's tiles");
constexpr int kConsumers = 256;              // two warpgroups
constexpr int kProducerWarp = kConsumers / 32;  // the first producer warp
constexpr int kStep = 64;                    // K elements per stage
constexpr int kAlign = 1024;  // the 128-byte swizzle pattern repeats every 1 KB
constexpr int kOutBox = 64;   // output tiles go out as 64 x 64 boxes, 128-byte swizzled
constexpr int kOutBoxBytes = kOutBox * kOutBox * 2;
// Shared memory of a kernel with a `stages`-deep ring of `stage_bytes` stages and `extra` bytes
// beside it.
constexpr size_t shared_bytes(int stages, int stage_bytes, int extra) {
  return static_cast<size_t>(stages) * stage_bytes + extra + kAlign + 2 * stages * sizeof(uint64_t);
}
// forward / grad_input tiles are kTokens x 128 features, one thread block per multiprocessor;
// each consumer warpgroup owns kTokens / 2 token rows, two m64 products per K step sharing the
// weight operand. 256 tokens rather than 128 (at two blocks per multiprocessor) cut the bytes the
// tiles move through L2 per result by 17-24 % and measured 10-16 % faster on every shape of the
// benchmark (docs/perf.md, version 6). Persistent: a block walks its tiles (BlockTiles below) through
// one ring of four stages, beside an output buffer that holds one m64 set of each warpgroup
// (stored a set at a time), so the producer fills the next tile's stages while the consumers
// store this one. Before version 11 (docs/perf.md), lines with long K loops ran one tile per
// block; persistent with four stages measured 1.02-1.23x faster on them.
constexpr int kTokens = 256;
static_assert(kTokens == kKernelTileTokens && kStep == kKernelStepFeatures, "the schedule's cost model must match");
constexpr int kSets = kTokens / 128;  // m64 products per warpgroup and K step
constexpr int kLineBlocksPerSM = 1;
// A line kernel of tiles kWidth features wide. Its producer warps: warp p fills the stages of
// steps p, p + kProducers, ... (so each owns a fixed set of ring slots; one warp's instruction
// chain per stage took longer than the stage's products, docs/perf.md versions 17 and 18).
// Wide tiles hold 96 accumulators per m64 set and thread, 192 in all, more than a block of 320
// threads may give each: their producers are a whole warpgroup (three producing, one idle) that
// hands registers to the consumers (setmaxnreg: 56 per producer thread, 224 per consumer; the
// consumers spill at 216, the producers at 40), and with 56 KB stages and a 48 KB output buffer
// the ring has three stages.
template <int kWidth>
struct LineConfig {
  static_assert(kWidth == kTile || kWidth == kWideTile, "narrow or wide tiles");
  static constexpr bool kWide = kWidth == kWideTile;
  static constexpr int kAccumulators = kWidth / 2;  // per consumer thread and m64 set
  static constexpr int kProducers = kWide ? 3 : 2;
  static constexpr int kThreads = kConsumers + (kWide ? 128 : 32 * kProducers);
  static constexpr int kProducerRegisters = 56, kConsumerRegisters = 224;  // wide tiles
  static_assert(kConsumerRegisters * kConsumers + kProducerRegisters * 128 <= 65536, "the register file");
  static constexpr int kABytes = kTokens * kStep * 2;
  static constexpr int kBBytes = kWidth * kStep * 2;
  static constexpr int kStages = kWide ? 3 : 4;
  static_assert(kStages % kProducers == 0, "each ring slot must belong to one producer warp");
  static constexpr int kOutBoxes = kWidth / kOutBox;                // 64-wide output boxes of a set
  static constexpr int kOutBytes = kTokens * kWidth * 2 / kSets;  // one m64 set of each warpgroup
  static constexpr int kBiasBytes = kWidth * 2;                     // a tile's bias, per warpgroup
  static constexpr int kInfoBytes = 32;                            // a stage's tile record (TileInfo)
  static constexpr int kInfoOffset = kOutBytes + 2 * kBiasBytes;
  static constexpr int kMixOffset = kInfoOffset + kStages * kInfoBytes;
  static constexpr int kLowRankBarrierOffset = kMixOffset + 16;  // LowRankBeside: a barrier per warpgroup
  // Beside the ring: the output buffer, the bias buffers, the stages' tile records, the mix, the
  // barriers of the low-rank operands.
  static constexpr int kExtraBytes = kLowRankBarrierOffset + 16;
  static constexpr size_t kShared = shared_bytes(kStages, kABytes + kBBytes, kExtraBytes);
  static_assert(kShared <= 227 * 1024, "more shared memory than a multiprocessor has");
};
// grad_weight: 128 x kN pieces, kN the schedule's piece width (tile_schedule.h): 256, two
// m64n128 products per warpgroup and K slice, or 192, one m64n192. A 64-token stage holds 16 KB
// of dY and kN x 128 bytes of X; long K loops (tokens), a 4-stage ring, one block per
// multiprocessor. What else the pass computes (GradientExtra):
// - kFold, kFoldOneSet (GradientFold: x^T a, a of at most kMaxGradientFoldRank columns): the
//   stage also holds a's 64 x 32 box (4 KB, after dY's rows), and each warpgroup multiplies two
//   64-feature sets of the piece's X columns (kFold) or one (kFoldOneSet) by it, m64n32
//   products, the sets the schedule gives it (tile_schedule.h: gradient_fold_sets; one set each
//   where two per piece cover x's features, as at the paper's fc2 shapes).
// - kLowRank (GradientLowRank, pieces that cover each row of dY once): PixelflyLinear's two
//   products against its low-rank factors from the same stages of dY, dY^T [a | 1] (a = x v: its
//   64 x 32 box after X's in the B stage, the ones from a constant region) and dY u (u's rows of
//   the piece held for the whole pass; dY's two boxes as a K-major A: 64 tokens by the piece's 128
//   features, the warpgroups taking the stages in turn, each warp adding its 16 x 32 sums of a
//   stage into a float32 tokens x 32 buffer by one tensor reduction from shared memory).
// Either adds 20-36 accumulators per consumer thread, more than a block of 288 threads may give
// each at kN = 256 (168 registers: ptxas spilled), so the producer is then a whole warpgroup (one
// warp producing) that hands registers to the consumers (setmaxnreg, 56 / 224, as the wide line
// tiles do).
constexpr int kGradientBlocksPerSM = 1;
constexpr int kFoldRankColumns = 32;  // a's columns in a stage (zeros past the rank)
static_assert(kFoldRankColumns == kMaxGradientFoldRank, "the fold's box holds the largest rank");
constexpr int kFoldBoxBytes = kStep * kFoldRankColumns * 2;
constexpr int kDyUWarpBytes = 16 * kFoldRankColumns * 4;  // kLowRank: a warp's 16 rows of a step's dY u
enum class GradientExtra { kNone, kFold, kFoldOneSet, kLowRank };
template <int kN, GradientExtra kExtra>
struct GradientConfig {
  static_assert(kN == kGradientPieceFeatures || kN == kNarrowGradientPieceFeatures, "a schedule's piece width");
  static constexpr bool kFold = kExtra == GradientExtra::kFold || kExtra == GradientExtra::kFoldOneSet;
  static constexpr bool kLowRank = kExtra == GradientExtra::kLowRank;
  static constexpr int kProducts = kN == 2 * kTile ? 2 : 1;
  static constexpr int kProductWidth = kN / kProducts;     // 128 or 192 columns
  static constexpr int kAccumulators = kProductWidth / 2;  // per consumer thread and product
  static constexpr int kColumnGroups = kN / 8;             // hj: the products' groups of 8 columns
  static constexpr int kDyBytes = kTile * kStep * 2;
  static constexpr int kABytes = kDyBytes + (kFold ? kFoldBoxBytes : 0);
  static constexpr int kXBytes = kN * kStep * 2;
  static constexpr int kBBytes = kXBytes + (kLowRank ? kFoldBoxBytes : 0);  // a's box after X's
  static constexpr int kFoldProducts = kExtra == GradientExtra::kFoldOneSet ? 1 : kMaxGradientFoldProducts;
  static_assert(kGradientFoldSetFeatures == 64 && kGradientFoldWarpgroups * 128 == kConsumers, "the fold's sets");
  static constexpr bool kProducerWarpgroup = kExtra != GradientExtra::kNone;
  static constexpr int kThreads = kConsumers + (kProducerWarpgroup ? 128 : 32);
  static constexpr int kProducerRegisters = 56, kConsumerRegisters = 224;  // with a producer warpgroup
  static_assert(kConsumerRegisters * kConsumers + kProducerRegisters * 128 <= 65536, "the register file");
  static constexpr int kStages = 4;
  // kLowRank, beside the ring: u's rows of the piece (128 x 32, 64-byte swizzle), the ones (a
  // 64 x 32 box of them), u's barrier, and two buffers per warpgroup for a step's dY u (64 tokens
  // x 32 float32 columns, 128-byte swizzled as the tensor reduction into dy_u_sums reads them).
  static constexpr int kUBytes = kTile * kFoldRankColumns * 2;
  static constexpr int kOnesOffset = kUBytes, kUBarrierOffset = kOnesOffset + kFoldBoxBytes;
  static constexpr int kDyUBufferBytes = kStep * kFoldRankColumns * 4;  // its four warps' 16 rows
  static constexpr int kDyUBuffersOffset = (kUBarrierOffset + 16 + kAlign - 1) / kAlign * kAlign;
  static constexpr int kExtraBytes = kLowRank ? kDyUBuffersOffset + 4 * kDyUBufferBytes : 0;
  static constexpr size_t kShared = shared_bytes(kStages, kABytes + kBBytes, kExtraBytes);
  static_assert(kShared <= 227 * 1024, "more shared memory than a multiprocessor has");
};

// How a block size B splits into TMA boxes: chunks of C = min(B, 64) elements along K (line
// kernels) or along N (the weight gradient's X), swizzled at 2 C bytes, across an operand of kN
// rows (a line tile's width; 128 in the weight gradient).
template <int B, int kN = kTile>
struct Chunking {
  static constexpr int C = B < 64 ? B : 64;
  static constexpr int kPerStage = kStep / C;       // K chunks per stage (line kernels)
  static constexpr int kBoxes = kN / C;             // C-wide boxes across the operand
  static constexpr int kSwizzle = 2 * C;            // bytes
  static constexpr int kChunkBytes = kN * 2 * C;    // one K chunk of the operand
  static constexpr int kBoxBytes = 2 * C * C;       // a C x C weight box
  static constexpr uint64_t kLayout = C == 64 ? 1 : (C == 32 ? 2 : 3);  // descriptor swizzle code
};

// Shared memory of every kernel here: kStages A stages of kABytes, kStages B stages of kBBytes,
// `extra` bytes (an output buffer), then the "full" and "empty" barrier of each stage. Steps are
// numbered across all the tiles a block computes: step i uses stage i % kStages in phase
// (i / kStages) & 1 (32-bit: the division by a stage count that is not a power of two stays a
// short multiply, where a 64-bit one took a dozen instructions per step on each thread).
template <int kStages, int kABytes, int kBBytes>
struct Ring {
  uint32_t a, b, extra, full, empty;
  __device__ uint32_t stage(uint32_t i) const { return i % kStages; }
  __device__ uint32_t phase(uint32_t i) const { return (i / kStages) & 1u; }
  __device__ uint32_t full_bar(uint32_t i) const { return full + 8 * stage(i); }
  __device__ uint32_t empty_bar(uint32_t i) const { return empty + 8 * stage(i); }
  __device__ uint32_t a_stage(uint32_t i) const { return a + stage(i) * kABytes; }
  __device__ uint32_t b_stage(uint32_t i) const { return b + stage(i) * kBBytes; }
};

template <int kStages, int kABytes, int kBBytes>
__device__ __forceinline__ Ring<kStages, kABytes, kBBytes> make_ring(unsigned char* raw, int extra_bytes) {
  const uint32_t base = smem_address(raw);
  Ring<kStages, kABytes, kBBytes> r;
  r.a = base + ((kAlign - (base & (kAlign - 1))) & (kAlign - 1));
  r.b = r.a + kStages * kABytes;
  r.extra = r.b + kStages * kBBytes;
  r.full = r.extra + extra_bytes;
  r.empty = r.full + 8 * kStages;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      device::barrier_init(r.full + 8 * s, 1);
      device::barrier_init(r.empty + 8 * s, kConsumers);
    }
    device::barrier_init_fence();
  }
  __syncthreads();
  return r;
}

// The producer warp, steps first .. first + steps - 1: waits until the consumers have released
// each step's stage, then load(i) announces the stage's bytes (lane 0) and issues its TMA copies
// (spread over the lanes).
template <typename Ring, typename Load>
__device__ __forceinline__ void produce(const Ring& ring, uint32_t first, uint32_t steps, Load&& load) {
  for (uint32_t i = first; i < first + steps; ++i) {
    if (threadIdx.x % 32 == 0) barrier_wait(ring.empty_bar(i), ring.phase(i) ^ 1u);
    __syncwarp();
    load(i);
  }
}

// The consumer warpgroups, steps first .. first + steps - 1 (step - first is the K step of the
// tile): for each step waits for its stage, issues the stage's products into the accumulators
// (kProducts 64 x N products; the tile's first product of each with accumulate 0, so that
// nothing needs zeroing) with issue(k step, i), which fences the
// accumulators before them and commits them in kGroups groups, the last commit left to this
// loop (so that it may wait for the products in flight and rescale the accumulators between two
// of its products), and releases the previous stage once its products are done. Returns with
// every product complete and every stage released. after_step(k step) runs once each step's
// products are issued and all but the last kGroups groups of them are done (with issue's groups
// more than kGroups, the step's first ones too), outside any group of products.
struct NoHook {
  __device__ void operator()(uint32_t) const {}
};
template <int kGroups, int kProducts, int kAccumulators, typename Ring, typename Issue, typename Hook = NoHook>
__device__ __forceinline__ void consume(float (&d)[kProducts][kAccumulators], const Ring& ring, uint32_t first,
                                        uint32_t steps, Issue&& issue, Hook&& after_step = Hook{}) {
  for (uint32_t i = first; i < first + steps; ++i) {
    barrier_wait(ring.full_bar(i), ring.phase(i));
    issue(i - first, i);
    wgmma_commit();
    wgmma_wait<kGroups>();  // the previous stage's products are done
    if (i > first) barrier_arrive(ring.empty_bar(i - 1));
    after_step(i - first);
  }
  wgmma_wait<0>();
#pragma unroll
  for (int s = 0; s < kProducts; ++s) fence_accumulators(d[s]);
  if (steps > 0) barrier_arrive(ring.empty_bar(first + steps - 1));
}

// consume (from step 0), two steps at a time: issue(parity, step, i) and after_step(parity, step)
// take the step's parity as a compile-time constant (std::integral_constant), so that what
// differs between even and odd steps needs no branch around wgmma (behind one ptxas serialises
// every product of the kernel, its C7520 note). last() runs after the last step, before the wait
// for every product and the last stage's release: it may issue and commit more products.
template <int kGroups, int kProducts, int kAccumulators, typename Ring, typename Issue, typename Hook, typename Last>
__device__ __forceinline__ void consume_in_pairs(float (&d)[kProducts][kAccumulators], const Ring& ring,
                                                 uint32_t steps, Issue&& issue, Hook&& after_step, Last&& last) {
  auto one = [&](auto parity, uint32_t i) {
    barrier_wait(ring.full_bar(i), ring.phase(i));
    issue(parity, i, i);
    wgmma_commit();
    wgmma_wait<kGroups>();  // the previous stage's products are done
    if (i > 0) barrier_arrive(ring.empty_bar(i - 1));
    after_step(parity, i);
  };
  uint32_t i = 0;
  for (; i + 1 < steps; i += 2) {
    one(std::integral_constant<int, 0>{}, i);
    one(std::integral_constant<int, 1>{}, i + 1);
  }
  if (i < steps) one(std::integral_constant<int, 0>{}, i);
  last();
  wgmma_wait<0>();
#pragma unroll
  for (int s = 0; s < kProducts; ++s) fence_accumulators(d[s]);
  if (steps > 0) barrier_arrive(ring.empty_bar(steps - 1));
}

// Row (within its warpgroup's 64 x 128 product) and column of this thread's accumulators
// d[4 j + 2 h + e] (e: the column's neighbour).
__device__ __forceinline__ int accumulator_row(int warp, int lane, int h) {
  return (warp % 4) * 16 + lane / 4 + 8 * h;
}
__device__ __forceinline__ int accumulator_col(int lane, int j) { return 8 * j + 2 * (lane % 4); }

// ----- forward (kTransposed = false) and grad_input (kTransposed = true) ----------------------
// The tiles of this block, in order: its list in the host-built order (offsets, then tiles; see
// launch_shape.h), or without one tiles b, b + grid, ...
struct BlockTiles {
  const int32_t* list = nullptr;
  int64_t count = 0;
  __device__ int64_t operator[](int64_t j) const { return list != nullptr ? list[j] : blockIdx.x + j * gridDim.x; }
};
__device__ __forceinline__ BlockTiles block_tiles(const int32_t* order, int64_t tiles) {
  if (order != nullptr) {
    const int32_t begin = order[blockIdx.x], end = order[blockIdx.x + 1];
    return BlockTiles{order + gridDim.x + 1 + begin, end - begin};
  }
  return BlockTiles{nullptr, blockIdx.x < tiles ? (tiles - blockIdx.x + gridDim.x - 1) / gridDim.x : 0};
}

// One tile: a group of lines (128 or 192 output features) by kTokens tokens; tile t is group t % groups
// of token tile t / groups. K runs over two terms in C-wide chunks, the group's union of blocks
// (sparse_chunks) and the low-rank factors (rank_chunks), the second term's chunks right after
// the first's, so that at blocks under 64 a rank-32 term fills the last sparse stage where that
// stage is half empty (Mixer-B fc1's forward: 5 blocks of 32, three stages instead of four).
// With a mix g the term of the smaller weight goes first (the low-rank one when g > 1/2): the
// accumulators are scaled by min / max weight (at most 1) before the second term's first chunk
// and by the larger weight at the end, so no operand tile needs rescaling. Without a mix, the
// block-sparse term goes first.
// LowRankBeside (block 32, rank at most 32; the caller chooses it where most unions have an even
// number of blocks, so that the rank chunk would take a stage of its own, +27 % at GPT-2-medium's
// fc1 forward, docs/perf.md version 31): the ring carries the union's chunks only, and the low-rank
// term's operands (the warpgroup's 128 rows of a, 8 KB, and the tile's rows of b, which is then
// (features, rank) in both directions) go into the warpgroup's half of the output buffer, copied
// by its storer once the stores of the tile before have read it (after the tile's first step) and
// multiplied after the ring's last step (issued behind it instead, with a scaled by (1 - g) / g
// in place, the kernel took 1 us longer: docs/perf.md version 32). The
// block-sparse term is then always first: the accumulators are scaled by g / (1 - g) before the
// low-rank products (1 - g at least 2^-24, so g = 1 adds 2^-24 of the low-rank term) and by 1 - g
// at the end.
// A tile's K steps are line_tile_steps (tile_schedule.h), by which the host's tile order
// (line_tile_order) also costs tiles. A tile of empty lines without a low-rank term still takes
// one stage (of zeros): the consumers learn of every tile through its first stage (TileInfo).

// A group's record in the schedule (tile_schedule.h): its first line, its lines, the offset and
// length of its union index list, the offset of its lines' block lists. 32-bit, like the tile
// numbers (the producer warps hold a record and two tile numbers ahead, in few registers).
struct GroupRecord {
  int first_line = 0, lines = 0, union_offset = 0, length = 0, blocks_offset = 0;
};
__device__ __forceinline__ GroupRecord load_record(const int64_t* records, int group) {
  const int64_t* g = records + 5 * group;
  return GroupRecord{static_cast<int>(g[0]), static_cast<int>(g[1]), static_cast<int>(g[2]), static_cast<int>(g[3]),
                     static_cast<int>(g[4])};
}

template <int B>
struct LineTile {
  int length = 0, length_k = 0;  // union blocks; their K extent, length * B
  int sparse_chunks = 0, first_chunks = 0, chunks = 0, steps = 0;
  bool low_rank_first = false;
  const int64_t* union_index = nullptr;
  const int64_t* line_blocks = nullptr;
  int feature0 = 0, token0 = 0, boxes_per_chunk = 0;
  // Chunk q of the K walk: whether it is a block-sparse chunk (chunks past the end count as
  // block-sparse ones past the union, which copy zeros) and its K offset within its term.
  __device__ bool sparse(int q) const { return q >= chunks || (low_rank_first ? q >= first_chunks : q < first_chunks); }
  __device__ int term_k(int q) const {
    using K = Chunking<B>;
    if (q >= chunks) return length_k;
    return (q < first_chunks ? q : q - first_chunks) * K::C;
  }
};

template <int B, bool kTransposed, int kWidth>
__device__ __forceinline__ LineTile<B> line_tile(const DeviceLayout& layout, const GroupRecord& g, int tile,
                                                 int groups, int64_t rank, bool low_rank_first) {
  using K = Chunking<B, kWidth>;
  LineTile<B> t;
  t.length = g.length;
  t.length_k = t.length * B;
  t.union_index = (kTransposed ? layout.col_index : layout.row_index) + g.union_offset;
  t.line_blocks = (kTransposed ? layout.col_blocks : layout.row_blocks) + g.blocks_offset;
  t.feature0 = g.first_line * B;
  t.token0 = tile / groups * kTokens;
  t.sparse_chunks = t.length_k / K::C;
  const int rank_chunks = static_cast<int>((rank + K::C - 1) / K::C);
  t.chunks = t.sparse_chunks + rank_chunks;
  t.steps = static_cast<int>(line_tile_steps(t.length, B, rank));
  t.low_rank_first = low_rank_first;
  t.first_chunks = low_rank_first ? rank_chunks : t.sparse_chunks;
  const int line_end = g.lines * B;  // features of this group's lines inside the tile
  t.boxes_per_chunk = (line_end + K::C - 1) / K::C < K::kBoxes ? (line_end + K::C - 1) / K::C : K::kBoxes;
  return t;
}

// One producer lane's copy of each stage: item `item` of a stage's kPerStage * (1 + kBoxes)
// copies is chunk c = item / (1 + kBoxes) of the stage, box -1 its activation box, boxes 0.. its
// weight boxes (the same for every stage: the lane's item does not change).
struct LaneCopy {
  int c = 0, box = 0;
  bool active = false;  // item < kPerStage * (1 + kBoxes)
};
template <int B, int kWidth>
__device__ __forceinline__ LaneCopy lane_copy(int item) {
  using K = Chunking<B, kWidth>;
  return LaneCopy{item / (1 + K::kBoxes), item % (1 + K::kBoxes) - 1, item < K::kPerStage * (1 + K::kBoxes)};
}
// A chunk of the K walk at one step: its term, its K offset in it, and whether it is a
// block-sparse chunk past the union (which copies zeros).
struct ChunkAt {
  bool sparse = false, past_union = false;
  int k = 0;
};
template <int B>
__device__ __forceinline__ ChunkAt chunk_at(const LineTile<B>& tile, int step, int c) {
  const int q = step * Chunking<B>::kPerStage + c;
  ChunkAt a;
  a.sparse = tile.sparse(q);
  a.k = tile.term_k(q);
  a.past_union = a.sparse && a.k >= tile.length_k;
  return a;
}
// The index entry a lane's copy of chunk `a` needs, read from global memory: the union's column
// (or row) for an activation box, the line's block for a weight box; -1 where none is needed or
// the line has no block there.
template <int B>
__device__ __forceinline__ int lane_entry(const LineTile<B>& tile, const ChunkAt& a, const LaneCopy& copy) {
  if (!copy.active || !a.sparse || a.past_union || copy.box >= tile.boxes_per_chunk) return -1;
  const int u = static_cast<int>(static_cast<unsigned>(a.k) / B);  // k >= 0: a shift
  return static_cast<int>(copy.box < 0 ? tile.union_index[u]
                                       : tile.line_blocks[(copy.box * Chunking<B>::C / B) * tile.length + u]);
}

// What the consumers need of a tile. The producer writes it into the record slot of the tile's
// first stage before announcing that stage, and the mix once, so that the consumers read no
// global memory between two tiles.
struct TileInfo {
  int steps, first_chunks, chunks, feature0, token0;
};
template <int B>
__device__ __forceinline__ void store_tile_info(uint32_t slot, const LineTile<B>& t) {
  device::store_shared(slot, static_cast<uint32_t>(t.steps));
  device::store_shared(slot + 4, static_cast<uint32_t>(t.first_chunks));
  device::store_shared(slot + 8, static_cast<uint32_t>(t.chunks));
  device::store_shared(slot + 12, static_cast<uint32_t>(t.feature0));
  device::store_shared(slot + 16, static_cast<uint32_t>(t.token0));
}
__device__ __forceinline__ TileInfo load_tile_info(uint32_t slot) {
  return TileInfo{static_cast<int>(device::load_shared(slot)), static_cast<int>(device::load_shared(slot + 4)),
                  static_cast<int>(device::load_shared(slot + 8)), static_cast<int>(device::load_shared(slot + 12)),
                  static_cast<int>(device::load_shared(slot + 16))};
}

// Maps: in_map (tokens x in, boxes kTokens x C), weight_map (values as nnz * B rows of B, boxes
// C x C), low_rank_a_map (tokens x rank, kTokens x C; kBeside: kTokens / 2 x C), low_rank_b_map
// (forward and kBeside: out x rank, grad_input's ring: rank x out; C x C), out_map (tokens x out,
// 64 x 64).
template <typename T, int B, bool kTransposed, int kWidth, bool kBeside>
__global__ void __launch_bounds__(LineConfig<kWidth>::kThreads, kLineBlocksPerSM)
    line_group_kernel(const __grid_constant__ CUtensorMap in_map, const __grid_constant__ CUtensorMap weight_map,
                      const __grid_constant__ CUtensorMap low_rank_a_map,
                      const __grid_constant__ CUtensorMap low_rank_b_map, const __grid_constant__ CUtensorMap out_map,
                      DeviceLayout layout, int64_t tokens, Epilogue epilogue, const int32_t* __restrict__ order) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using K = Chunking<B, kWidth>;
  using L = LineConfig<kWidth>;
  static_assert(!kBeside || B == kLowRankBesideBlock, "the low-rank operands beside the ring: one 32-deep chunk");
  extern __shared__ unsigned char smem_raw[];
  constexpr int kAChunkBytes = kTokens * 2 * K::C;  // one K chunk of the activations
  const auto ring = make_ring<L::kStages, L::kABytes, L::kBBytes>(smem_raw, L::kExtraBytes);
  const uint32_t low_rank_barriers = ring.extra + L::kLowRankBarrierOffset;
  if constexpr (kBeside) {
    if (threadIdx.x == 0) {
      device::barrier_init(low_rank_barriers, 1);
      device::barrier_init(low_rank_barriers + 8, 1);
      device::barrier_init_fence();
    }
    __syncthreads();
  }
  const int64_t groups = kTransposed ? layout.num_col_groups : layout.num_row_groups;
  const int64_t tiles = groups * ((tokens + kTokens - 1) / kTokens);
  const int64_t in_features = kTransposed ? layout.out_features : layout.in_features;
  const int64_t out_features = kTransposed ? layout.in_features : layout.out_features;
  const int64_t rank = epilogue.rank;
  const int64_t ring_rank = kBeside ? 0 : rank;  // the low-rank chunks the ring carries
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  // The mix g (1 without one), read where it is used rather than kept beside the accumulators.
  auto mix = [&] {
    return epilogue.mix != nullptr ? device::load_mix(epilogue.mix, epilogue.mix_kind, epilogue.mix_logit) : 1.f;
  };
  const bool low_rank_first = !kBeside && epilogue.mix != nullptr && mix() > 0.5f;
  const BlockTiles mine = block_tiles(order, tiles);

  const uint32_t info = ring.extra + L::kInfoOffset, mix_slot = ring.extra + L::kMixOffset;
  auto info_slot = [&](uint32_t i) { return info + ring.stage(i) * L::kInfoBytes; };

  if (warp >= kProducerWarp) {
    if constexpr (L::kWide) device::lower_registers<L::kProducerRegisters>();
    const int producer = warp - kProducerWarp;
    if (mine.count == 0 || producer >= L::kProducers) return;
    const int null_row = static_cast<int>(layout.nnz * B);  // first row past the weight: reads zeros
    const int64_t* records = kTransposed ? layout.col_groups : layout.row_groups;
    if (producer == 0 && lane == 0) device::store_shared(mix_slot, __float_as_uint(mix()));  // with stage 0
    // The metadata reads run ahead of the copies, so that no copy waits on a load from L2 (a chain
    // of them at each tile's start cost the short tiles about a microsecond each): the tile
    // number two tiles ahead and the group record one tile ahead are read a tile before they are
    // used, each lane's index entries for a stage when this warp's stage before it is issued.
    const int line_groups = static_cast<int>(groups);
    int next_tile = mine.count > 1 ? static_cast<int>(mine[1]) : 0;
    int after_next_tile = mine.count > 2 ? static_cast<int>(mine[2]) : 0;
    GroupRecord next = mine.count > 1 ? load_record(records, next_tile % line_groups) : GroupRecord{};
    const int first_tile = static_cast<int>(mine[0]);
    LineTile<B> tile = line_tile<B, kTransposed, kWidth>(layout, load_record(records, first_tile % line_groups),
                                                         first_tile, line_groups, ring_rank, low_rank_first);
    int64_t j = 0;  // the tile
    int step = 0;   // and its K step
    // Moves on by one step; false past the block's last.
    auto advance = [&] {
      if (++step < tile.steps) return true;
      if (++j == mine.count) return false;
      tile = line_tile<B, kTransposed, kWidth>(layout, next, next_tile, line_groups, ring_rank, low_rank_first);
      next_tile = after_next_tile;
      if (j + 1 < mine.count) next = load_record(records, next_tile % line_groups);
      if (j + 2 < mine.count) after_next_tile = static_cast<int>(mine[j + 2]);
      step = 0;
      return true;
    };
    for (int p = 0; p < producer; ++p) {
      if (!advance()) return;
    }
    constexpr int kItems = K::kPerStage * (1 + K::kBoxes), kItemsPerLane = (kItems + 31) / 32;
    // Each lane's copies (fixed), their chunks at the next step and those chunks' index entries.
    LaneCopy copy[kItemsPerLane];
    ChunkAt chunk[kItemsPerLane];
    int entry[kItemsPerLane];
#pragma unroll
    for (int r = 0; r < kItemsPerLane; ++r) {
      copy[r] = lane_copy<B, kWidth>(lane + 32 * r);
      chunk[r] = chunk_at(tile, step, copy[r].c);
      entry[r] = lane_entry(tile, chunk[r], copy[r]);
    }
    for (uint32_t i = producer;; i += L::kProducers) {
      if (lane == 0) barrier_wait(ring.empty_bar(i), ring.phase(i) ^ 1u);
      __syncwarp();
      const uint32_t bar = ring.full_bar(i), a_dst = ring.a_stage(i), b_dst = ring.b_stage(i);
      if (lane == 0) {
        if (step == 0) store_tile_info(info_slot(i), tile);
        barrier_arrive_expect(bar, K::kPerStage * (kAChunkBytes + tile.boxes_per_chunk * K::kBoxBytes));
      }
      __syncwarp();
      // Each lane's copy through one code path (the map and coordinates chosen by selects), 32-bit
      // arithmetic: the copies of a stage are one loop over the lanes that have one (a single
      // producer's instruction chain limited the line kernels; docs/perf.md versions 17, 18).
#pragma unroll
      for (int r = 0; r < kItemsPerLane; ++r) {
        const LaneCopy cp = copy[r];
        const ChunkAt a = chunk[r];
        const bool weight = cp.box >= 0;
        const int n = cp.box * K::C, k_in_block = static_cast<int>(static_cast<unsigned>(a.k) % B), e = entry[r];
        const int row = e >= 0 ? e * B : null_row;
        const int activation_x = a.sparse ? (a.past_union ? static_cast<int>(in_features) : e * B + k_in_block) : a.k;
        int weight_x, weight_y;
        if constexpr (kTransposed) {
          weight_x = a.sparse ? n % B : tile.feature0 + n;
          weight_y = a.sparse ? row + k_in_block : a.k;
        } else {
          weight_x = a.sparse ? k_in_block : a.k;
          weight_y = a.sparse ? row + n % B : tile.feature0 + n;
        }
        const void* map = weight ? (a.sparse ? static_cast<const void*>(&weight_map) : &low_rank_b_map)
                                 : (a.sparse ? static_cast<const void*>(&in_map) : &low_rank_a_map);
        const uint32_t dst = weight ? b_dst + cp.c * K::kChunkBytes + cp.box * K::kBoxBytes : a_dst + cp.c * kAChunkBytes;
        if (cp.active && cp.box < tile.boxes_per_chunk) {
          tma_load(dst, map, weight ? weight_x : activation_x, weight ? weight_y : tile.token0, bar);
        }
      }
      bool more = true;
#pragma unroll
      for (int p = 0; p < L::kProducers; ++p) more = more && advance();
      if (!more) break;
#pragma unroll
      for (int r = 0; r < kItemsPerLane; ++r) {
        chunk[r] = chunk_at(tile, step, copy[r].c);
        entry[r] = lane_entry(tile, chunk[r], copy[r]);
      }
    }
    return;
  }

  if constexpr (L::kWide) device::raise_registers<L::kConsumerRegisters>();
  float d[kSets][L::kAccumulators] = {};  // every tile's first products overwrite them (consume)
  const T* bias = static_cast<const T*>(epilogue.bias);
  // The weights of the first and second term (LineTile), from the mix the producer stored (read
  // once a tile's first stage has arrived).
  auto stored_mix = [&] { return __uint_as_float(device::load_shared(mix_slot)); };
  auto first_weight = [&] { return low_rank_first ? 1.f - stored_mix() : stored_mix(); };
  auto second_weight = [&] { return low_rank_first ? stored_mix() : 1.f - stored_mix(); };
  auto scale_accumulators = [&](float factor) {
#pragma unroll
    for (int s = 0; s < kSets; ++s)
#pragma unroll
      for (int i = 0; i < L::kAccumulators; ++i) d[s][i] *= factor;
  };
  const int warpgroup = warp / 4;
  constexpr int kWarpgroupRows = kTokens / 2;
  const uint32_t warpgroup_rows = static_cast<uint32_t>(warpgroup) * kWarpgroupRows * 2 * K::C;
  const bool storer = tid % 128 == 0;  // issues its warpgroup's TMA stores
  // kBeside: the warpgroup's half of the output buffer holds its rows of a (8 KB), then b's rows
  // of the tile (C x C boxes, as a ring stage holds a weight chunk).
  constexpr int kLowRankABytes = kWarpgroupRows * 2 * K::C;
  static_assert(!kBeside || kLowRankABytes + K::kBoxes * K::kBoxBytes <= L::kOutBytes / 2,
                "the low-rank operands fit the warpgroup's half of the output buffer");
  const uint32_t low_rank_a = ring.extra + warpgroup * L::kOutBoxes * kOutBoxBytes;
  const uint32_t low_rank_b = low_rank_a + kLowRankABytes, low_rank_bar = low_rank_barriers + 8 * warpgroup;
  auto beside_low_weight = [&] { return fmaxf(1.f - stored_mix(), 0x1p-24f); };
  uint32_t first = 0;
  for (int64_t j = 0; j < mine.count; ++j) {
    barrier_wait(ring.full_bar(first), ring.phase(first));  // the tile's first stage, with its record
    const TileInfo tile = load_tile_info(info_slot(first));
    // The tile's kWidth bias values go to this warpgroup's bias buffer by cp.async, 16 bytes per
    // thread, while the K loop runs (zeros past the last feature), so the epilogue does not wait
    // on global loads. The warpgroup's last epilogue barrier ordered its reads of the last tile's.
    const uint32_t bias_buffer = ring.extra + L::kOutBytes + warpgroup * L::kBiasBytes;
    if (bias != nullptr && tid % 128 < kWidth / 8) {
      const int64_t feature = tile.feature0 + 8 * (tid % 128);
      const bool inside = feature < out_features;
      device::copy16_async(bias_buffer + 16 * (tid % 128), bias + (inside ? feature : 0), inside ? 16u : 0u);
    }
    // kBeside: the storer copies the tile's low-rank operands into the buffer once the last
    // tile's stores have read it, while the first step's products run (after a later step, the
    // tile before's stores given longer to read the buffer, the kernel took 0.7-4 us longer:
    // docs/perf.md version 32).
    auto copy_low_rank = [&] {
      if constexpr (kBeside) {
        if (storer) {
          device::tma_store_wait_read();
          barrier_arrive_expect(low_rank_bar, kLowRankABytes + K::kBoxes * K::kBoxBytes);
          tma_load(low_rank_a, &low_rank_a_map, 0, tile.token0 + kWarpgroupRows * warpgroup, low_rank_bar);
#pragma unroll
          for (int n = 0; n < K::kBoxes; ++n) {
            tma_load(low_rank_b + n * K::kBoxBytes, &low_rank_b_map, 0, tile.feature0 + n * K::C, low_rank_bar);
          }
        }
      }
    };
    consume<K::kPerStage>(
        d, ring, first, tile.steps,
        [&](uint32_t step, uint32_t i) {
          const uint32_t a = ring.a_stage(i) + warpgroup_rows, b = ring.b_stage(i);
#pragma unroll
          for (int c = 0; c < K::kPerStage; ++c) {
            const int q = static_cast<int>(step) * K::kPerStage + c;
            if (epilogue.mix != nullptr && q == tile.first_chunks && q > 0 && q < tile.chunks) {
              // The first term is complete: wait for its products, rescale, go on.
              wgmma_wait<0>();
#pragma unroll
              for (int s = 0; s < kSets; ++s) fence_accumulators(d[s]);
              scale_accumulators(first_weight() / second_weight());
            }
            wgmma_fence();
#pragma unroll
            for (int ks = 0; ks < K::C / 16; ++ks) {
              const uint32_t b_chunk = b + c * K::kChunkBytes;
              const uint64_t db = kTransposed
                                      ? descriptor(b_chunk + ks * 32 * K::C, K::kBoxBytes, 16 * K::C, K::kLayout)
                                      : descriptor(b_chunk + ks * 32, 16, 16 * K::C, K::kLayout);
#pragma unroll
              for (int s = 0; s < kSets; ++s) {
                const uint64_t da = descriptor(a + c * kAChunkBytes + s * 64 * 2 * K::C + ks * 32, 16, 16 * K::C,
                                               K::kLayout);
                mma_64xNx16<T, 0, kTransposed ? 1 : 0>(d[s], da, db, step > 0 || c > 0 || ks > 0);
              }
            }
            if (c + 1 < K::kPerStage) wgmma_commit();
          }
        },
        [&](uint32_t step) {
          if (step == 0) copy_low_rank();
        });
    first += tile.steps;
    if constexpr (kBeside) {  // the low-rank term's products, from the buffer
      barrier_wait(low_rank_bar, static_cast<uint32_t>(j) & 1u);
      if (epilogue.mix != nullptr) scale_accumulators(stored_mix() / beside_low_weight());
      wgmma_fence();
#pragma unroll
      for (int ks = 0; ks < K::C / 16; ++ks) {
        const uint64_t db = descriptor(low_rank_b + ks * 32, 16, 16 * K::C, K::kLayout);
#pragma unroll
        for (int s = 0; s < kSets; ++s) {
          const uint64_t da = descriptor(low_rank_a + s * 64 * 2 * K::C + ks * 32, 16, 16 * K::C, K::kLayout);
          mma_64xNx16<T, 0, 0>(d[s], da, db, 1);
        }
      }
      wgmma_commit();
      wgmma_wait<0>();
#pragma unroll
      for (int s = 0; s < kSets; ++s) fence_accumulators(d[s]);
    }
    // The weight of the term that came last (1 without a mix), applied as the results are packed.
    const float last_weight = epilogue.mix == nullptr ? 1.f
                              : kBeside                ? beside_low_weight()
                              : tile.chunks == tile.first_chunks ? first_weight()
                                                                 : second_weight();

    // Epilogue, one m64 set s at a time: scale by the last weight and add the bias, stage the
    // set's 64 x kWidth results as kOutBoxes 64 x 64 boxes in the 128-byte swizzled layout
    // (features 64 h..), store them with TMA. The buffer holds one set per warpgroup (so that the
    // ring keeps its stages): before writing it the storer waits until the stores of the set before
    // have read it; the last set's stores run on while the next tile's products start.
    const uint32_t buffer = ring.extra + warpgroup * L::kOutBoxes * kOutBoxBytes;
    auto warpgroup_barrier = [&] {
      if (warpgroup == 0) {
        device::named_barrier<2, 128>();
      } else {
        device::named_barrier<3, 128>();
      }
    };
    // stmatrix stores four 8 x 8 matrices per warp: for column pair jp, matrix q holds rows
    // 8 (q % 2).. and columns 16 jp + 8 (q / 2).. of the warp's 16 rows, from accumulators
    // d[8 jp + 2 q], d[8 jp + 2 q + 1]; lane supplies the address of row lane % 8 of matrix
    // lane / 8, whose 16 bytes land at chunk (2 (jp % 4) + q / 2) ^ (row % 8) of the row.
    const int q = lane / 8, r = lane % 8;
    const uint32_t row_offset = static_cast<uint32_t>((warp % 4) * 16 + 8 * (q % 2) + r) * 128;
    const uint32_t chunk = static_cast<uint32_t>(((q / 2) ^ r) << 4);
    if (bias != nullptr && tid % 128 < kWidth / 8) device::copy_async_wait_all();  // seen after the barrier below
    // The bias words of column pair jp (columns 16 jp + 8 h + 2 (lane % 4) and the next, h = 0, 1)
    // are loaded one pair ahead: read just before their use, each load's latency stood in the
    // epilogue's chain (the loads are ordered with the stmatrix stores; docs/perf.md version 32).
    auto bias_words = [&](int jp, uint32_t (&words)[2]) {
#pragma unroll
      for (int h = 0; h < 2; ++h) words[h] = device::load_shared(bias_buffer + 2 * (16 * jp + 8 * h + 2 * (lane % 4)));
    };
    // Set s's results, scaled by the last weight (kScale) and with the bias added (kBias), packed
    // and written to the buffer; one instantiation per case, so that the case without a bias or a
    // mix packs the accumulators as they are (the epilogue's instructions are a good part of a
    // short tile's time, docs/perf.md version 18).
    auto stage_set = [&](int s, auto with_bias, auto with_scale) {
      constexpr bool kBias = decltype(with_bias)::value, kScale = decltype(with_scale)::value;
      uint32_t next[2] = {};
      if constexpr (kBias) bias_words(0, next);
#pragma unroll
      for (int jp = 0; jp < kWidth / 16; ++jp) {
        float2 add[2] = {};
        if constexpr (kBias) {
          const uint32_t words[2] = {next[0], next[1]};
          if (jp + 1 < kWidth / 16) bias_words(jp + 1, next);
#pragma unroll
          for (int h = 0; h < 2; ++h) add[h] = device::unpack2<T>(words[h]);
        }
        uint32_t v[4];
#pragma unroll
        for (int m = 0; m < 4; ++m) {
          float x = d[s][8 * jp + 2 * m], y = d[s][8 * jp + 2 * m + 1];
          if constexpr (kScale && kBias) {
            x = __fmaf_rn(x, last_weight, add[m / 2].x);
            y = __fmaf_rn(y, last_weight, add[m / 2].y);
          } else if constexpr (kScale) {
            x *= last_weight;
            y *= last_weight;
          } else if constexpr (kBias) {
            x += add[m / 2].x;
            y += add[m / 2].y;
          }
          v[m] = device::pack2<T>(x, y);
        }
        const uint32_t column_chunk = chunk ^ ((2 * (jp % 4)) << 4);
        device::store_matrices(buffer + (jp / 4) * kOutBoxBytes + row_offset + column_chunk, v);
      }
    };
#pragma unroll
    for (int s = 0; s < kSets; ++s) {
      if (storer) device::tma_store_wait_read();
      warpgroup_barrier();
      if (bias != nullptr) {
        if (epilogue.mix != nullptr) {
          stage_set(s, std::true_type{}, std::true_type{});
        } else {
          stage_set(s, std::true_type{}, std::false_type{});
        }
      } else if (epilogue.mix != nullptr) {
        stage_set(s, std::false_type{}, std::true_type{});
      } else {
        stage_set(s, std::false_type{}, std::false_type{});
      }
      device::fence_async_shared();
      warpgroup_barrier();
      if (storer) {
        const int row = tile.token0 + kWarpgroupRows * warpgroup + 64 * s;
        for (int h = 0; h < L::kOutBoxes; ++h) {
          if (row < tokens && tile.feature0 + 64 * h < out_features) {
            device::tma_store(&out_map, tile.feature0 + 64 * h, row, buffer + h * kOutBoxBytes);
          }
        }
        device::tma_store_commit();
      }
    }
  }
  if (storer) device::tma_store_wait_all();
#else
  __trap();  // built without sm_90a; the host never launches this (see available())
#endif
}

// ----- grad_weight ----------------------------------------------------------------------------
// A piece is up to 128 rows of dY's features by up to kN of X's (256 or 192, GradientConfig), K
// walks tokens. Both operands are [token][feature] tiles (M-/N-major); each consumer warpgroup
// computes 64 rows by the kN columns as two m64n128 products or one m64n192. The block
// accumulates one token split (blockIdx.y). With out.cluster = 0 it adds the split into the float32 sums (tensor
// reductions, add_block_sums; the caller zeroes them and, for the operator, rounds them afterwards). With
// out.cluster = the split count, a piece's splits are one thread-block cluster whose blocks sum
// each other's accumulators through distributed shared memory and store each result once, in the
// storage type or in float32: no zeroing, no reductions in global memory, no rounding pass, and
// the same sums in the same order on every run. With a fold (reductions only), x^T a as well:
// each warpgroup's products for its sets (gradient_fold_sets), added into v_sums for the columns
// the piece owns (gradient_column_owner), so that every input feature's row is added once per
// token split.
// With kLowRank (reductions only, pieces that cover each row of dY once), dY^T [a | 1] added into
// `product` for the piece's rows and dY u into `dy_u_sums` (GradientConfig).
// Maps: dy_map (tokens x out, boxes 64 x 64, 128-byte swizzle), x_map (tokens x in, boxes 64 x
// C), x_runs_map (at blocks 16 and 32 where the layout's pieces hold their columns in runs 64
// features wide, DeviceLayout::gradient_columns_in_runs_of_64: x in boxes 64 x 64, 128-byte
// swizzle, one run each; otherwise unused), a_map (kFold, kLowRank: tokens x rank, boxes 64 x 32,
// 64-byte swizzle, zeros past the rank), u_map (kLowRank: out x rank, boxes 128 x 32, 64-byte
// swizzle, zeros past the rank), dy_u_map (kLowRank: dy_u_sums, float32 tokens x 32, boxes 16 x
// 32, 128-byte swizzle), sums_map (out.cluster = 0: the sums, float32 (nnz * B) x B, boxes 16 x
// min(B, 32), swizzled at a box row).
struct GradientOut {
  float* sums = nullptr;   // float32, nnz * b * b: added into (cluster 0) or stored (values null)
  void* values = nullptr;  // the storage type, nnz * b * b, stored (cluster > 0)
  int cluster = 0;         // the splits of a piece summed in one cluster; 0: reductions into sums
  float* v_sums = nullptr;  // kFold: float32, in_features x rank, added into
  int rank = 0;             // kFold, kLowRank: a's (and u's) columns, a multiple of 8 up to kFoldRankColumns
  float* dy_u_sums = nullptr;  // kLowRank: float32, tokens x kFoldRankColumns, added into
  float* product = nullptr;    // kLowRank: float32, out_features x product_pitch, added into
  int64_t product_pitch = 0;
  bool ones = false;  // kLowRank: dY's sums over the tokens into product's column `rank`
};
constexpr int kMaxGradientCluster = 8; // the portable cluster size
// In a cluster, a block stages its accumulators (every column group of every consumer thread,
// 16 bytes each) after the block table (kGradientTableBytes) at the start of the ring.
constexpr int kGradientTableBytes = 1024;
// Without a cluster, a block adds its sums of one token split into the float32 sums, viewed
// through sums_map as an (nnz * B) x B matrix, by tensor reductions from shared memory: each warp
// stages its 16 rows of the piece (its accumulators d: kProducts products of kProductWidth
// columns) in `staging` (the ring, free once the products are done) as boxes of 16 rows by
// min(B, 32) columns, swizzled as the map reads them (so that a warp's stores meet no bank
// conflict), and its lane k adds box k where the piece has a block there. (Added by the threads
// themselves, 8 bytes per reduction, the sums took up to 13 % of the kernel at the paper's shapes,
// docs/perf.md version 28; this form measured 0-5 % faster there, version 41.) The caller waits
// for the reductions to have read shared memory before the block exits.
template <int B>
constexpr int gradient_sums_box_columns() {
  return B < 32 ? B : 32;
}
template <int B, int kN, int kProducts, int kAccumulators>
__device__ __forceinline__ void add_block_sums(const float (&d)[kProducts][kAccumulators], const CUtensorMap& sums_map,
                                               uint32_t staging, uint32_t table, int warp, int lane, int m_end,
                                               int n_end, int cols) {
  constexpr int W = gradient_sums_box_columns<B>(), kBoxBytes = 16 * W * 4, kBoxes = kN / W;
  constexpr int kSwizzle = 4 * W;                  // a box row's bytes: 64 or 128
  constexpr int kProductWidth = 2 * kAccumulators;  // a product's columns
  static_assert(kBoxes <= 32, "one box per lane");
  const int m0 = (warp / 4) * 64 + accumulator_row(warp, 0, 0);  // the warp's first row of the piece
  if (m0 >= m_end) return;  // the whole warp: m_end is a multiple of B
  const uint32_t boxes = staging + warp * kBoxes * kBoxBytes;
#pragma unroll
  for (int h = 0; h < kProducts; ++h)
#pragma unroll
    for (int j = 0; j < kAccumulators / 4; ++j)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int row = accumulator_row(warp, lane, r) - accumulator_row(warp, 0, 0);
        const int n = h * kProductWidth + accumulator_col(lane, j);
        const uint32_t at = boxes + (n / W) * kBoxBytes + row * kSwizzle + (n % W) * 4;
        device::store_shared_float2(at ^ ((at >> 3) & (kSwizzle - 16)), d[h][4 * j + 2 * r], d[h][4 * j + 2 * r + 1]);
      }
  device::fence_async_shared();
  __syncwarp();
  const int n = lane * W;  // this lane's box's first column of the piece
  if (lane < kBoxes && n < n_end) {
    const int block = static_cast<int>(device::load_shared(table + 4 * ((m0 / B) * cols + n / B)));
    if (block >= 0) {
      device::tma_reduce_add(&sums_map, n % B, block * B + m0 % B, boxes + lane * kBoxBytes);
      device::tma_store_commit();
    }
  }
}

template <typename T, int B, int kN, GradientExtra kExtra>
__global__ void __launch_bounds__(GradientConfig<kN, kExtra>::kThreads, kGradientBlocksPerSM)
    gradient_kernel(const __grid_constant__ CUtensorMap dy_map, const __grid_constant__ CUtensorMap x_map,
                    const __grid_constant__ CUtensorMap a_map, const __grid_constant__ CUtensorMap u_map,
                    const __grid_constant__ CUtensorMap dy_u_map, const __grid_constant__ CUtensorMap sums_map,
                    const __grid_constant__ CUtensorMap x_runs_map, DeviceLayout layout, int64_t tokens,
                    int64_t tokens_per_split, GradientOut out) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using K = Chunking<B>;
  using G = GradientConfig<kN, kExtra>;
  constexpr bool kFold = G::kFold, kLowRank = G::kLowRank;
  static_assert(kN % B == 0, "a piece holds whole blocks");
  // A block's staged accumulators (a cluster's, or every warp's 16 rows for add_block_sums: the
  // same bytes) after the table.
  static_assert(kGradientTableBytes + G::kColumnGroups * kConsumers * 16 <= G::kStages * (G::kABytes + G::kBBytes) &&
                    (kConsumers / 32) * 16 * kN * 4 == G::kColumnGroups * kConsumers * 16,
                "a block's staged accumulators must fit in the ring");
  constexpr int kDyBoxBytes = 64 * kStep * 2;
  constexpr int kXBoxBytes = kStep * 2 * K::C;
  // X in a stage: C-wide boxes (2 C-byte rows), or at blocks 16 and 32 where every piece holds its
  // columns in runs 64 features wide, one 64-wide box per run (128-byte rows, the 128-byte
  // swizzle): the copies then ask L2 for whole lines (Mixer-B fc2's dW 1.44x at block 16, 1.06x at
  // block 32; docs/perf.md, version 48). A column range's bytes are where they are either way.
  static_assert(kGradientXRunFeatures == 64, "a run's box: 128-byte rows, the 128-byte swizzle");
  constexpr int kXRun = kGradientXRunFeatures / K::C;  // C-wide boxes in a run's box
  const bool x_runs = kXRun > 1 && layout.gradient_columns_in_runs_of_64;
  const uint32_t x_row_bytes = x_runs ? 128 : 2 * K::C, x_atom_bytes = x_runs ? kXRun * kXBoxBytes : kXBoxBytes;
  const uint64_t x_layout = x_runs ? 1 : K::kLayout;
  // X's operand at `at` for the products' K slice ks (16 tokens), N-major (or M-major, the fold's).
  auto x_descriptor = [&](uint32_t at, int ks) {
    return descriptor(at + ks * 16 * x_row_bytes, x_atom_bytes, 8 * x_row_bytes, x_layout);
  };
  constexpr int kProductBoxes = G::kProductWidth / K::C;  // X boxes of one product
  constexpr int kProductGroups = G::kProductWidth / 8;    // a product's groups of 8 columns
  extern __shared__ unsigned char smem_raw[];
  const auto ring = make_ring<G::kStages, G::kABytes, G::kBBytes>(smem_raw, G::kExtraBytes);
  const uint32_t u_rows = ring.extra, ones = ring.extra + G::kOnesOffset,
                 u_bar = ring.extra + G::kUBarrierOffset;  // kLowRank
  if constexpr (kLowRank) {
    if (threadIdx.x == 0) {
      device::barrier_init(u_bar, 1);
      device::barrier_init_fence();
    }
    __syncthreads();
  }

  const int64_t* p = layout.gradient_pieces + 5 * static_cast<int64_t>(blockIdx.x);
  const int64_t row_begin = p[0], rows = p[1], cols = p[3];
  const int64_t* columns = layout.gradient_columns + p[2];
  const int64_t* piece_blocks = layout.gradient_blocks + p[4];
  const int64_t token_begin = static_cast<int64_t>(blockIdx.y) * tokens_per_split;
  const int64_t token_end = token_begin + tokens_per_split < tokens ? token_begin + tokens_per_split : tokens;
  const int64_t steps = token_end > token_begin ? (token_end - token_begin + kStep - 1) / kStep : 0;
  // kLowRank: the pieces of one token split take its steps from different starts (piece p from
  // step p, modulo the steps), so that no two of them add their dY u reductions into the same
  // rows of dy_u_sums at once (starts p mod 8 measured 2-3 us slower at Mixer-B fc1's 24 pieces,
  // docs/perf.md version 38); X's rows of as many steps as there are pieces (24-32 at the paper's
  // fc1 shapes, 2-3 MB) stay in L2 for the pieces that read them later.
  const uint32_t first_step = kLowRank && steps > 0 ? blockIdx.x % static_cast<uint32_t>(steps) : 0u;
  auto token_step = [&](uint32_t i) {  // the step (of the split's tokens) that ring step i holds
    const uint32_t t = i + first_step;
    return t < static_cast<uint32_t>(steps) ? t : t - static_cast<uint32_t>(steps);
  };
  const int m_end = static_cast<int>(rows * B), n_end = static_cast<int>(cols * B);
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;

  if (warp >= kProducerWarp) {
    if constexpr (G::kProducerWarpgroup) {
      device::lower_registers<G::kProducerRegisters>();
      if (warp > kProducerWarp) return;  // these run no cluster: the other producer warps have nothing to do
    }
    // From one stage to the next a lane's copy (dY boxes first, then X's) changes only in its
    // token and its ring slot: its map, box offset and column are worked out once, so each stage
    // is lane 0's byte count and one copy per lane. A piece has at most kTile dY rows (two 64-row
    // boxes) and kN X columns.
    // With a fold or the low-rank products, the last active lane copies a's box, after dY's rows
    // in the A stage (fold) or after X's in the B stage (low-rank); u's rows of the piece come
    // once, before the first stage. With the low-rank products both of dY's boxes come, a last row
    // group's features past the matrix as zeros (TMA's fill), since dY u sums over all 128 rows.
    constexpr bool kABox = kFold || kLowRank;
    static_assert(kTile / 64 + kN / K::C + 1 <= 32, "a piece's boxes must fit one per lane");
    const int dy_boxes = kLowRank ? kTile / 64 : (m_end + 63) / 64, x_boxes = (n_end + K::C - 1) / K::C;
    const int boxes = dy_boxes + x_boxes;
    const bool active = lane < boxes + (kABox ? 1 : 0), dy = lane < dy_boxes, a_box = kABox && lane == boxes;
    const int n = (lane - dy_boxes) * K::C;  // the X box's first column within the piece
    const int col = !active || a_box ? 0
                    : dy             ? static_cast<int>(row_begin * B) + 64 * lane
                                     : static_cast<int>(columns[n / B] * B) + n % B;
    // With x_runs the first X lane of each run copies the run as one box, the others nothing.
    const bool x_lane = active && !dy && !a_box, x_idle = x_runs && x_lane && (lane - dy_boxes) % kXRun != 0;
    const void* map = dy ? static_cast<const void*>(&dy_map) : a_box ? &a_map : x_runs ? &x_runs_map : &x_map;
    const bool to_a = dy || (kFold && a_box);
    const uint32_t offset = dy      ? lane * kDyBoxBytes
                            : a_box ? (kFold ? G::kDyBytes : G::kXBytes)
                                    : (lane - dy_boxes) * kXBoxBytes;
    const uint32_t bytes = dy_boxes * kDyBoxBytes + x_boxes * kXBoxBytes + (kABox ? kFoldBoxBytes : 0);
    if constexpr (kLowRank) {
      if (lane == 0 && steps > 0) {
        barrier_arrive_expect(u_bar, G::kUBytes);
        tma_load(u_rows, &u_map, 0, static_cast<int>(row_begin * B), u_bar);
      }
    }
    produce(ring, 0, static_cast<uint32_t>(steps), [&](uint32_t i) {
      const uint32_t bar = ring.full_bar(i);
      if (lane == 0) barrier_arrive_expect(bar, bytes);
      __syncwarp();
      const int token = static_cast<int>(token_begin + token_step(i) * kStep);
      if (active && !x_idle) tma_load((to_a ? ring.a_stage(i) : ring.b_stage(i)) + offset, map, col, token, bar);
    });
    if (out.cluster > 1) {  // the consumers' two cluster barriers count every thread
      __syncwarp();
      device::cluster_sync();
      device::cluster_sync();
    }
    return;
  }

  if constexpr (G::kProducerWarpgroup) device::raise_registers<G::kConsumerRegisters>();
  // Columns past a narrower piece's end multiply whatever their X boxes hold and are not stored:
  // skipping them would be a branch around wgmma, which ptxas serialises.
  float d[G::kProducts][G::kAccumulators] = {};  // the first products overwrite them (consume)
  // The fold's products, X's feature set fold_sets[j] by a's 32 columns (kFold only), and where
  // each set's X boxes start in a stage (set -1 adds nothing and multiplies set 0).
  float e[kFold ? G::kFoldProducts : 1][16] = {};
  const int warpgroup = warp / 4;
  int fold_sets[kFold ? G::kFoldProducts : 1] = {};
  uint32_t fold_offsets[kFold ? G::kFoldProducts : 1] = {};
  if constexpr (kFold) {
    const int64_t* sets = layout.gradient_fold_sets + (kGradientFoldWarpgroups * blockIdx.x + warpgroup) *
                                                          kMaxGradientFoldProducts;
#pragma unroll
    for (int j = 0; j < G::kFoldProducts; ++j) {
      fold_sets[j] = static_cast<int>(sets[j]);
      fold_offsets[j] = static_cast<uint32_t>(max(fold_sets[j], 0)) * (64 / K::C) * kXBoxBytes;
    }
  }
  const uint32_t warpgroup_rows = static_cast<uint32_t>(warpgroup) * kDyBoxBytes;  // rows 64 * warpgroup
  // kLowRank: dY^T a (l), dY^T 1 (o: eight equal columns), and dY u of the step (f), 64 tokens by
  // 32 columns over this warpgroup's 64 rows of the piece.
  float l[16] = {}, o[4] = {}, f[16] = {};
  if constexpr (kLowRank) {
    // The ones (16 bytes per consumer thread), made visible to the tensor cores, and u's rows.
    const uint32_t one = std::is_same_v<T, __nv_bfloat16> ? 0x3F803F80u : 0x3C003C00u;
#pragma unroll
    for (int k = 0; k < 4; ++k) device::store_shared(ones + 16 * tid + 4 * k, one);
    device::fence_async_shared();
    device::named_barrier<1, kConsumers>();
    if (steps > 0) barrier_wait(u_bar, 0);
  }
  // kLowRank: dY u is computed on even steps, two steps' at once: on step s warpgroup 0 computes
  // f, dY u of step s's 64 tokens over all 128 rows of the piece, and warpgroup 1 that of step
  // s - 1 (whose stage it still holds; on step 0 step 0's, adding nothing); each adds its f into
  // dy_u_sums on the odd step after, and after the last step warpgroup 1 computes the last step's
  // if that was odd. The warpgroups need not meet: through shared memory, with a barrier of both
  // each step, the consumer warps' chain between two steps held the products (docs/perf.md
  // version 37). They differ only in the stage they read, and whether to add is a branch around
  // the add alone, the same for the whole warpgroup: no branch on either surrounds a product
  // (ptxas would serialise every product of the kernel behind one, its C7520 note).
  auto dy_u_step = [&](uint32_t s) { return warpgroup == 1 && s > 0 ? s - 1 : s; };
  // Adds f, dY u of step s, into dy_u_sums where `adds` (the same for the whole warpgroup): each
  // warp's 16 x 32 sums go to its rows of one of the warpgroup's two buffers and on to L2 as one
  // tensor reduction (the map drops rows past the tokens; a split's steps end at its tokens' end
  // but for the last split's), issued by the warp's first lane once the warp's stores are in.
  // Before the stores that lane waits until its reductions so far have read their buffers (the
  // one of the add before, the other buffer, is all that can be in flight). (512 16-byte
  // reductions per add from the threads themselves took 17-18 us of the kernel at Mixer-B fc1,
  // docs/perf.md version 37.)
  uint32_t dy_u_adds = 0;
  auto add_dy_u = [&](uint32_t s, bool adds) {
    if (!adds) return;
    const uint32_t rows = ring.extra + G::kDyUBuffersOffset +
                          (2 * warpgroup + (dy_u_adds & 1u)) * G::kDyUBufferBytes + (warp % 4) * kDyUWarpBytes;
    ++dy_u_adds;
    if (lane == 0) device::tma_store_wait_read();
    __syncwarp();
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = lane / 4 + 8 * h;  // of the warp's 16 (accumulator_row less the warp's first)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        // f[4 j + 2 h + e]: column 8 j + 2 (lane % 4) + e, in 16-byte chunk 2 j + (lane % 4) / 2.
        const int chunk = (2 * j + (lane % 4) / 2) ^ (row % 8);
        device::store_shared_float2(rows + row * 128 + chunk * 16 + 8 * (lane % 2), f[4 * j + 2 * h],
                                    f[4 * j + 2 * h + 1]);
      }
    }
    device::fence_async_shared();
    __syncwarp();
    if (lane == 0) {
      const int token = static_cast<int>(token_begin + token_step(s) * kStep) + accumulator_row(warp, 0, 0);
      device::tma_reduce_add(&dy_u_map, 0, token, rows);
      device::tma_store_commit();
    }
  };
  // One step's products: dY^T X into d, and the fold's or dY^T [a | 1] (kLowRank).
  auto issue = [&](uint32_t step, uint32_t i) {
    const uint32_t a = ring.a_stage(i) + warpgroup_rows, b = ring.b_stage(i);
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < kStep / 16; ++ks) {
      const uint64_t da = descriptor(a + ks * 2048, kDyBoxBytes, 1024, 1);
#pragma unroll
      for (int h = 0; h < G::kProducts; ++h) {
        const uint64_t db = x_descriptor(b + h * kProductBoxes * kXBoxBytes, ks);
        mma_64xNx16<T, 1, 1>(d[h], da, db, step > 0 || ks > 0);
      }
      if constexpr (kFold) {
        // A: X's 64 features of the set (M-major, as X is N-major above); B: a's rows of the
        // 16 tokens (N-major, 64-byte swizzle: the stride steps 8 rows of 64 bytes).
        const uint64_t db = descriptor(ring.a_stage(i) + G::kDyBytes + ks * 16 * 64, kFoldBoxBytes, 512, 2);
#pragma unroll
        for (int j = 0; j < G::kFoldProducts; ++j) {
          const uint64_t da = x_descriptor(b + fold_offsets[j], ks);
          mma_64xNx16<T, 1, 1>(e[j], da, db, step > 0 || ks > 0);
        }
      }
      if constexpr (kLowRank) {
        // B: a's rows of the 16 tokens, then the ones (N-major, 64-byte swizzle, as the fold's a).
        mma_64xNx16<T, 1, 1>(l, da, descriptor(b + G::kXBytes + ks * 16 * 64, kFoldBoxBytes, 512, 2),
                             step > 0 || ks > 0);
        mma_64xNx16<T, 1, 1>(o, da, descriptor(ones + ks * 16 * 64, kFoldBoxBytes, 512, 2), step > 0 || ks > 0);
      }
    }
  };
  // kLowRank: dY u of a step, A dY's two boxes K-major (64 tokens by 64 features each), B u's rows
  // of those features (N-major, 64-byte swizzle).
  auto issue_dy_u = [&](uint32_t i) {
    wgmma_fence();
#pragma unroll
    for (int box = 0; box < kTile / 64; ++box)
#pragma unroll
      for (int ks = 0; ks < 4; ++ks) {
        mma_64xNx16<T, 0, 1>(f, descriptor(ring.a_stage(i) + box * kDyBoxBytes + ks * 32, 16, 1024, 1),
                             descriptor(u_rows + (box * 64 + ks * 16) * 64, G::kUBytes, 512, 2), box > 0 || ks > 0);
      }
  };
  if constexpr (kLowRank) {
    // On even steps dY u first (dy_u_step), in a group of its own, then the step's other products;
    // on the odd step after, once its own products are issued, dY u is added while they run.
    // (Read after waiting for every product, the tensor cores idled while the reductions were
    // issued, and the kernel took 1.5x as long.)
    const uint32_t last_step = steps > 0 ? static_cast<uint32_t>(steps) - 1 : 0;
    const bool odd_steps = steps % 2 == 1;
    consume_in_pairs<1>(
        d, ring, static_cast<uint32_t>(steps),
        [&](auto parity, uint32_t step, uint32_t i) {
          if constexpr (decltype(parity)::value == 0) {
            issue_dy_u(dy_u_step(step));
            wgmma_commit();
          }
          issue(step, i);
        },
        [&](auto parity, uint32_t step) {
          if constexpr (decltype(parity)::value == 1) {
            fence_accumulators(f);
            add_dy_u(dy_u_step(step - 1), warpgroup == 0 || step > 1);
          }
        },
        [&] {
          // The last even step's f where no odd step followed it, then the last odd step's.
          fence_accumulators(f);
          add_dy_u(dy_u_step(last_step), odd_steps && (warpgroup == 0 || last_step > 0));
          issue_dy_u(last_step);
          wgmma_commit();
        });
    fence_accumulators(f);
    add_dy_u(last_step, warpgroup == 1 && steps > 0 && !odd_steps);
    if (lane == 0) device::tma_store_wait_all();  // the buffers stay until their reductions are done
  } else {
    consume<1>(d, ring, 0, static_cast<uint32_t>(steps), [&](uint32_t step, uint32_t i) { issue(step, i); });
  }
  if constexpr (kFold) {
#pragma unroll
    for (int j = 0; j < G::kFoldProducts; ++j) fence_accumulators(e[j]);
  }
  const int cluster = kFold || kLowRank ? 0 : out.cluster;
  if (cluster == 0 && steps == 0) return;  // nothing to add
  if constexpr (kLowRank) {
    fence_accumulators(l);
    fence_accumulators(o);
    // dY^T [a | 1] for the piece's rows: row m, columns 8 q + 2 (lane % 4) and the next of l, and
    // column 0 of o (lanes 4 k) for the ones.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int m = warpgroup * 64 + accumulator_row(warp, lane, r);
      if (m >= m_end) continue;
      float* const row = out.product + (row_begin * B + m) * out.product_pitch;
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int column = accumulator_col(lane, q);
        if (column < out.rank) device::add2_global(row + column, l[4 * q + 2 * r], l[4 * q + 2 * r + 1]);
      }
      if (out.ones && lane % 4 == 0) atomicAdd(row + out.rank, o[2 * r]);
    }
  }

  // The piece's block table (at most kTile / B x kN / B entries) goes to
  // shared memory first, read in parallel, one entry per thread: looked up from global memory
  // beside each write, its reads were a chain of dependent loads through the epilogue. It
  // takes the start of the ring, once both warpgroups' products (which read the ring) are done.
  static_assert((kTile / B) * (kN / B) * 4 <= kGradientTableBytes, "the table must fit its bytes");
  static_assert((kTile / B) * (kN / B) <= kConsumers, "one table entry per consumer thread");
  const uint32_t table = ring.a;
  const int entries = static_cast<int>(rows * cols);
  device::named_barrier<1, kConsumers>();
  if (tid < entries) device::store_shared(table + 4 * tid, static_cast<uint32_t>(piece_blocks[tid]));
  if (cluster == 0) {
    device::named_barrier<1, kConsumers>();
    add_block_sums<B, kN>(d, sums_map, ring.a + kGradientTableBytes, table, warp, lane, m_end, n_end,
                          static_cast<int>(cols));
    if constexpr (kFold) {
      // Feature m of the piece (row of the fold's product), rank column 8 q + 2 (lane % 4) and
      // the next: added where this piece owns m's column block and m is inside the input.
#pragma unroll
      for (int j = 0; j < G::kFoldProducts; ++j) {
        if (fold_sets[j] < 0) continue;  // a product that adds nothing
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int m = fold_sets[j] * 64 + accumulator_row(warp, lane, r);
          if (m >= n_end) continue;
          const int64_t p_column = p[2] + m / B;
          if (layout.gradient_column_owner[p_column] == 0) continue;
          const int64_t feature = layout.gradient_columns[p_column] * B + m % B;
          if (feature >= layout.in_features) continue;
          float* const row = out.v_sums + feature * out.rank;
#pragma unroll
          for (int q = 0; q < 4; ++q) {
            const int column = accumulator_col(lane, q);
            if (column < out.rank) device::add2_global(row + column, e[j][4 * q + 2 * r], e[j][4 * q + 2 * r + 1]);
          }
        }
      }
    }
    device::tma_store_wait_read();  // the staged sums stay until their reductions have read them
    return;
  }

  // A cluster: each block stages its accumulators in its ring, column group hj = (a product's
  // groups) h + j (8 columns of one product, 4 values per thread) by thread; once every block of
  // the cluster has, each block sums the groups it owns (hj % cluster = its rank) over the
  // cluster, its own first, then the others' in rank order, reading theirs in place, and stores
  // them. Staged and written in rolled loops: unrolled over the accumulators, this epilogue was
  // twenty times longer than the kernel's loop and cost more in instruction fetches than the
  // reductions it saves.
  const uint32_t staged = ring.a + kGradientTableBytes;
#pragma unroll
  for (int hj = 0; hj < G::kColumnGroups; ++hj) {
    const int h = hj / kProductGroups, j = hj % kProductGroups;
    device::store_shared_float4(staged + (hj * kConsumers + tid) * 16,
                                make_float4(d[h][4 * j], d[h][4 * j + 1], d[h][4 * j + 2], d[h][4 * j + 3]));
  }
  if (cluster > 1) {
    device::cluster_sync();
  } else {
    device::named_barrier<1, kConsumers>();
  }
  const int rank = cluster > 1 ? static_cast<int>(device::cluster_rank()) : 0;
  for (int hj = rank; hj < G::kColumnGroups; hj += cluster) {
    const uint32_t mine = staged + (hj * kConsumers + tid) * 16;
    float4 v = device::load_shared_float4(mine);
    for (int source = 0; source < cluster; ++source) {
      if (source == rank) continue;
      const float4 w = device::load_cluster_float4(mine, source);
      v.x += w.x, v.y += w.y, v.z += w.z, v.w += w.w;
    }
    const int n = (hj / kProductGroups) * G::kProductWidth + accumulator_col(lane, hj % kProductGroups);
    for (int r = 0; r < 2; ++r) {
      const int m = (warp / 4) * 64 + accumulator_row(warp, lane, r);
      if (m >= m_end || n >= n_end) continue;
      const int block = static_cast<int>(device::load_shared(table + 4 * ((m / B) * static_cast<int>(cols) + n / B)));
      if (block < 0) continue;
      const int64_t i = static_cast<int64_t>(block) * (B * B) + (m % B) * B + n % B;
      const float a = r == 0 ? v.x : v.z, b = r == 0 ? v.y : v.w;
      if (out.values != nullptr) {
        static_cast<uint32_t*>(out.values)[i / 2] = device::pack2<T>(a, b);
      } else {
        *reinterpret_cast<float2*>(out.sums + i) = make_float2(a, b);
      }
    }
  }
  if (cluster > 1) device::cluster_sync();  // the other blocks read this one's staged sums until here
#else
  __trap();  // built without sm_90a; the host never launches this (see available())
#endif
}

template <typename T, int B, bool kTransposed, int kWidth, bool kBeside>
cudaError_t launch_lines(const DeviceLayout& layout, int64_t tokens, const void* in, const void* values,
                         const Epilogue& epilogue, void* out, const int32_t* order, cudaStream_t stream) {
  using K = Chunking<B, kWidth>;
  using L = LineConfig<kWidth>;
  const int64_t groups = kTransposed ? layout.num_col_groups : layout.num_row_groups;
  if (tokens == 0 || groups == 0) return cudaSuccess;
  constexpr bool bf16 = std::is_same_v<T, __nv_bfloat16>;
  const int64_t in_features = kTransposed ? layout.out_features : layout.in_features;
  const int64_t out_features = kTransposed ? layout.in_features : layout.out_features;
  const int64_t rank = epilogue.rank;
  CUtensorMap in_map{}, weight_map{}, low_rank_a_map{}, low_rank_b_map{}, out_map{};
  cudaError_t e = encode_tensor_map(&in_map, in, bf16, tokens, in_features, in_features, kTokens, K::C, K::kSwizzle);
  if (e == cudaSuccess && layout.nnz > 0) {
    e = encode_tensor_map(&weight_map, values, bf16, layout.nnz * B, B, B, K::C, K::C, K::kSwizzle);
  }
  if (e == cudaSuccess && rank > 0) {
    e = encode_tensor_map(&low_rank_a_map, epilogue.low_rank_a, bf16, tokens, rank, epilogue.low_rank_a_pitch,
                          kBeside ? kTokens / 2 : kTokens, K::C, K::kSwizzle);
    if (e == cudaSuccess) {
      // b: (rank, in) for the grad_input ring, (features, rank) otherwise (Epilogue).
      e = kTransposed && !kBeside ? encode_tensor_map(&low_rank_b_map, epilogue.low_rank_b, bf16, rank, out_features,
                                                      out_features, K::C, K::C, K::kSwizzle)
                                  : encode_tensor_map(&low_rank_b_map, epilogue.low_rank_b, bf16, out_features, rank,
                                                      rank, K::C, K::C, K::kSwizzle);
    }
  }
  if (e == cudaSuccess) {
    e = encode_tensor_map(&out_map, out, bf16, tokens, out_features, out_features, kOutBox, kOutBox, 128);
  }
  if (e != cudaSuccess) return e;
  const int64_t tiles = groups * ((tokens + kTokens - 1) / kTokens);
  const int64_t slots = kLineBlocksPerSM * device::multiprocessors();
  // With an order, the blocks line_tile_order dealt to (the same count: it reads the same slots).
  const int64_t blocks = order != nullptr ? std::min(tiles, slots) : persistent_blocks(tiles, groups, slots);
  constexpr auto kernel = line_group_kernel<T, B, kTransposed, kWidth, kBeside>;
  if (cudaError_t a = device::allow_shared_memory<kernel>(L::kShared); a != cudaSuccess) return a;
  kernel<<<static_cast<unsigned>(blocks), L::kThreads, L::kShared, stream>>>(
      in_map, weight_map, low_rank_a_map, low_rank_b_map, out_map, layout, tokens, epilogue, order);
  return cudaGetLastError();
}

// Clusters of `size` weight-gradient blocks of pieces kN wide the current device runs at once
// (the instantiations of one width take the same threads and shared memory, one block per
// multiprocessor; asked once per width and size).
template <int kN>
int gradient_clusters_at_once(int size) {
  if (size == 1) return kGradientBlocksPerSM * device::multiprocessors();
  static std::array<std::atomic<int>, kMaxGradientCluster + 1> known{};  // the count + 1; 0: not asked yet
  const int seen = known[size].load(std::memory_order_relaxed);
  if (seen > 0) return seen - 1;
  constexpr auto kernel = gradient_kernel<__nv_bfloat16, 32, kN, GradientExtra::kNone>;
  constexpr size_t kShared = GradientConfig<kN, GradientExtra::kNone>::kShared;
  int clusters = 0;
  if (device::allow_shared_memory<kernel>(kShared) == cudaSuccess) {
    cudaLaunchAttribute attribute{};
    attribute.id = cudaLaunchAttributeClusterDimension;
    attribute.val.clusterDim.x = 1;
    attribute.val.clusterDim.y = static_cast<unsigned>(size);
    attribute.val.clusterDim.z = 1;
    cudaLaunchConfig_t config{};
    config.gridDim = dim3(1, static_cast<unsigned>(size), 1);
    config.blockDim = dim3(GradientConfig<kN, GradientExtra::kNone>::kThreads);
    config.dynamicSmemBytes = kShared;
    config.attrs = &attribute;
    config.numAttrs = 1;
    if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) != cudaSuccess) {
      cudaGetLastError();  // clear it: no clusters of this size, reductions instead
      clusters = 0;
    }
  }
  known[size].store(clusters + 1, std::memory_order_relaxed);
  return clusters;
}

// The weight gradient's grid over `tokens`: tokens per split, splits per piece, and the cluster
// size when a piece's splits run as one cluster (0: each split adds into the float32 sums).
struct GradientGrid {
  int64_t per_split = 0, splits = 0;
  int cluster = 0;
};
GradientGrid gradient_grid(const DeviceLayout& layout, int64_t tokens) {
  GradientGrid g;
  const int64_t pieces = layout.num_gradient_pieces;
  if (tokens == 0 || pieces == 0) return g;
  const int64_t slots = kGradientBlocksPerSM * device::multiprocessors();
  g.per_split = gradient_split_tokens(tokens, pieces, kStep, slots);
  g.splits = (tokens + g.per_split - 1) / g.per_split;
  if (g.splits <= kMaxGradientCluster) {
    const int size = static_cast<int>(g.splits);
    const int at_once = layout.gradient_piece_features == kNarrowGradientPieceFeatures
                            ? gradient_clusters_at_once<kNarrowGradientPieceFeatures>(size)
                            : gradient_clusters_at_once<kGradientPieceFeatures>(size);
    if (gradient_clusters_fit(pieces, g.splits, at_once, slots)) g.cluster = size;
  }
  return g;
}

// One weight-gradient kernel over the grid g, its splits as clusters where g says.
template <auto kKernel>
cudaError_t launch_gradient_kernel(const GradientGrid& g, int threads, size_t shared, const CUtensorMap& dy_map,
                                   const CUtensorMap& x_map, const CUtensorMap& a_map, const CUtensorMap& u_map,
                                   const CUtensorMap& dy_u_map, const CUtensorMap& sums_map,
                                   const CUtensorMap& x_runs_map, const DeviceLayout& layout, int64_t tokens,
                                   const GradientOut& out, cudaStream_t stream) {
  if (cudaError_t a = device::allow_shared_memory<kKernel>(shared); a != cudaSuccess) return a;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeClusterDimension;
  attribute.val.clusterDim.x = 1;
  attribute.val.clusterDim.y = static_cast<unsigned>(g.cluster > 1 ? g.cluster : 1);
  attribute.val.clusterDim.z = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(layout.num_gradient_pieces), static_cast<unsigned>(g.splits), 1);
  config.blockDim = dim3(threads);
  config.dynamicSmemBytes = shared;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = g.cluster > 1 ? 1 : 0;
  return cudaLaunchKernelEx(&config, kKernel, dy_map, x_map, a_map, u_map, dy_u_map, sums_map, x_runs_map, layout,
                            tokens, g.per_split, out);
}

template <typename T, int B, int kN>
cudaError_t launch_gradient_at_width(const DeviceLayout& layout, int64_t tokens, const void* dy, const void* x,
                                     void* values, float* sums, const GradientFold* fold,
                                     const GradientLowRank* low_rank, cudaStream_t stream) {
  using K = Chunking<B>;
  const GradientGrid g = gradient_grid(layout, tokens);
  if (g.splits == 0) return cudaSuccess;
  if (g.cluster == 0 && sums == nullptr) return cudaErrorInvalidValue;  // reductions need the sums
  // the fold and the low-rank products add into their sums; not both in one pass
  if ((fold != nullptr || low_rank != nullptr) && (g.cluster != 0 || (fold != nullptr && low_rank != nullptr))) {
    return cudaErrorInvalidValue;
  }
  constexpr bool bf16 = std::is_same_v<T, __nv_bfloat16>;
  CUtensorMap dy_map{}, x_map{}, a_map{}, u_map{}, dy_u_map{}, sums_map{}, x_runs_map{};
  cudaError_t e =
      encode_tensor_map(&dy_map, dy, bf16, tokens, layout.out_features, layout.out_features, kStep, 64, 128);
  if (e == cudaSuccess) {
    e = encode_tensor_map(&x_map, x, bf16, tokens, layout.in_features, layout.in_features, kStep, K::C, K::kSwizzle);
  }
  if (e == cudaSuccess && K::C < kGradientXRunFeatures && layout.gradient_columns_in_runs_of_64) {
    e = encode_tensor_map(&x_runs_map, x, bf16, tokens, layout.in_features, layout.in_features, kStep,
                          kGradientXRunFeatures, 128);
  }
  const void* a = fold != nullptr ? fold->a : low_rank != nullptr ? low_rank->a : nullptr;
  const int64_t rank = fold != nullptr ? fold->rank : low_rank != nullptr ? low_rank->rank : 0;
  if (e == cudaSuccess && a != nullptr) {
    const int64_t pitch = fold != nullptr ? fold->a_pitch : low_rank->a_pitch;
    e = encode_tensor_map(&a_map, a, bf16, tokens, rank, pitch, kStep, kFoldRankColumns, 2 * kFoldRankColumns);
  }
  if (e == cudaSuccess && low_rank != nullptr) {
    e = encode_tensor_map(&u_map, low_rank->u, bf16, layout.out_features, rank, rank, kTile, kFoldRankColumns,
                          2 * kFoldRankColumns);
  }
  if (e == cudaSuccess && low_rank != nullptr) {
    e = encode_float32_tensor_map(&dy_u_map, low_rank->dy_u_sums, tokens, kFoldRankColumns, kFoldRankColumns, 16,
                                  kFoldRankColumns, 128);
  }
  if (e == cudaSuccess && g.cluster == 0) {
    constexpr int W = gradient_sums_box_columns<B>();
    e = encode_float32_tensor_map(&sums_map, sums, layout.nnz * B, B, B, 16, W, 4 * W);
  }
  if (e != cudaSuccess) return e;
  GradientOut out;
  out.sums = sums;
  out.values = g.cluster > 0 ? values : nullptr;
  out.cluster = g.cluster;
  out.rank = static_cast<int>(rank);
  if (fold != nullptr) {
    out.v_sums = fold->v_sums;
    if (layout.gradient_fold_products == 1) {
      using G = GradientConfig<kN, GradientExtra::kFoldOneSet>;
      return launch_gradient_kernel<gradient_kernel<T, B, kN, GradientExtra::kFoldOneSet>>(
          g, G::kThreads, G::kShared, dy_map, x_map, a_map, u_map, dy_u_map, sums_map, x_runs_map, layout, tokens, out,
          stream);
    }
    using G = GradientConfig<kN, GradientExtra::kFold>;
    return launch_gradient_kernel<gradient_kernel<T, B, kN, GradientExtra::kFold>>(
        g, G::kThreads, G::kShared, dy_map, x_map, a_map, u_map, dy_u_map, sums_map, x_runs_map, layout, tokens, out,
        stream);
  }
  if (low_rank != nullptr) {
    if constexpr (kN == kNarrowGradientPieceFeatures) {
      out.dy_u_sums = low_rank->dy_u_sums;
      out.product = low_rank->product;
      out.product_pitch = low_rank->product_pitch;
      out.ones = low_rank->ones;
      using G = GradientConfig<kN, GradientExtra::kLowRank>;
      return launch_gradient_kernel<gradient_kernel<T, B, kN, GradientExtra::kLowRank>>(
          g, G::kThreads, G::kShared, dy_map, x_map, a_map, u_map, dy_u_map, sums_map, x_runs_map, layout, tokens, out,
          stream);
    }
    return cudaErrorInvalidValue;  // the low-rank products ride in narrow pieces only (shared memory)
  }
  using G = GradientConfig<kN, GradientExtra::kNone>;
  return launch_gradient_kernel<gradient_kernel<T, B, kN, GradientExtra::kNone>>(
      g, G::kThreads, G::kShared, dy_map, x_map, a_map, u_map, dy_u_map, sums_map, x_runs_map, layout, tokens, out,
      stream);
}

// The weight-gradient kernel of the layout's piece width (DeviceLayout, tile_schedule.h).
template <typename T, int B>
cudaError_t launch_gradient(const DeviceLayout& layout, int64_t tokens, const void* dy, const void* x, void* values,
                            float* sums, const GradientFold* fold, const GradientLowRank* low_rank,
                            cudaStream_t stream) {
  if constexpr (kNarrowGradientPieceFeatures % B == 0) {
    if (layout.gradient_piece_features == kNarrowGradientPieceFeatures) {
      return launch_gradient_at_width<T, B, kNarrowGradientPieceFeatures>(layout, tokens, dy, x, values, sums, fold,
                                                                          low_rank, stream);
    }
  }
  if (layout.gradient_piece_features != kGradientPieceFeatures) return cudaErrorInvalidValue;
  return launch_gradient_at_width<T, B, kGradientPieceFeatures>(layout, tokens, dy, x, values, sums, fold, low_rank,
                                                                stream);
}

// The line kernel of the tile width of the grouping the caller chose for this direction and
// low-rank rank (DeviceLayout, tile_schedule.h: line_grouping), with the low-rank term in the
// ring or beside it as the caller chose (Epilogue::low_rank_beside).
template <typename T, int B, bool kTransposed, int kWidth>
cudaError_t launch_lines_with_low_rank(const DeviceLayout& layout, int64_t tokens, const void* in, const void* values,
                                       const Epilogue& epilogue, void* out, const int32_t* order,
                                       cudaStream_t stream) {
  if (!epilogue.low_rank_beside) {
    return launch_lines<T, B, kTransposed, kWidth, false>(layout, tokens, in, values, epilogue, out, order, stream);
  }
  if constexpr (B == kLowRankBesideBlock) {
    if (epilogue.rank > 0 && epilogue.rank <= kLowRankBesideBlock) {
      return launch_lines<T, B, kTransposed, kWidth, true>(layout, tokens, in, values, epilogue, out, order, stream);
    }
  }
  return cudaErrorInvalidValue;
}
template <typename T, int B, bool kTransposed>
cudaError_t launch_lines_at_width(const DeviceLayout& layout, int64_t tokens, const void* in, const void* values,
                                  const Epilogue& epilogue, void* out, const int32_t* order, cudaStream_t stream) {
  const int64_t width = kTransposed ? layout.col_tile_features : layout.row_tile_features;
  if constexpr (kWideTile % B == 0) {
    if (width == kWideTile) {
      return launch_lines_with_low_rank<T, B, kTransposed, kWideTile>(layout, tokens, in, values, epilogue, out, order,
                                                                      stream);
    }
  }
  if (width != kTile) return cudaErrorInvalidValue;
  return launch_lines_with_low_rank<T, B, kTransposed, kTile>(layout, tokens, in, values, epilogue, out, order, stream);
}

template <typename T>
cudaError_t dispatch(int which, const DeviceLayout& layout, int64_t tokens, const void* a, const void* b,
                     const Epilogue& epilogue, void* out, float* workspace, const GradientFold* fold,
                     const GradientLowRank* low_rank, const int32_t* order, cudaStream_t stream) {
#define PIXELFLY_BLOCK_CASE(BS)                                                                             \
  case BS:                                                                                                  \
    if (which == 0) return launch_lines_at_width<T, BS, false>(layout, tokens, a, b, epilogue, out, order, stream); \
    if (which == 1) return launch_lines_at_width<T, BS, true>(layout, tokens, a, b, epilogue, out, order, stream);  \
    return launch_gradient<T, BS>(layout, tokens, a, b, out, workspace, fold, low_rank, stream);
  switch (layout.block) {
    PIXELFLY_BLOCK_CASE(16)
    PIXELFLY_BLOCK_CASE(32)
    PIXELFLY_BLOCK_CASE(64)
    PIXELFLY_BLOCK_CASE(128)
  }
#undef PIXELFLY_BLOCK_CASE
  return cudaErrorInvalidValue;
}

cudaError_t dispatch_kind(int which, const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* a,
                          const void* b, const Epilogue& epilogue, void* out, float* workspace,
                          const GradientFold* fold, const GradientLowRank* low_rank, const int32_t* order,
                          cudaStream_t stream) {
  if (kind == ScalarKind::BFloat16) {
    return dispatch<__nv_bfloat16>(which, layout, tokens, a, b, epilogue, out, workspace, fold, low_rank, order,
                                   stream);
  }
  return dispatch<__half>(which, layout, tokens, a, b, epilogue, out, workspace, fold, low_rank, order, stream);
}

}  // namespace

bool available() {
#if defined(PIXELFLY_CUDA_SM90A)
  static const bool hopper = [] {
    int device = 0, major = 0, minor = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return false;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
    return major == 9 && minor == 0;
  }();
  return hopper;
#else
  return false;
#endif
}

cudaError_t forward(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* x, const void* values,
                    const Epilogue& epilogue, void* y, const int32_t* order, cudaStream_t stream) {
  return dispatch_kind(0, layout, kind, tokens, x, values, epilogue, y, nullptr, nullptr, nullptr, order, stream);
}

cudaError_t grad_input(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy,
                       const void* values, const Epilogue& epilogue, void* dx, const int32_t* order,
                       cudaStream_t stream) {
  return dispatch_kind(1, layout, kind, tokens, dy, values, epilogue, dx, nullptr, nullptr, nullptr, order, stream);
}

bool grad_weight_stored_once(const DeviceLayout& layout, int64_t tokens) {
  return gradient_grid(layout, tokens).cluster > 0;
}

cudaError_t grad_weight(const DeviceLayout& layout, ScalarKind kind, int64_t tokens, const void* dy, const void* x,
                        void* values, float* sums, const GradientFold* fold, const GradientLowRank* low_rank,
                        cudaStream_t stream) {
  return dispatch_kind(2, layout, kind, tokens, dy, x, Epilogue{}, values, sums, fold, low_rank, nullptr, stream);
}

}  // namespace pixelfly::kernels::cuda::wgmma

namespace pixelfly::kernels::cuda {

std::vector<int32_t> line_tile_order(const std::vector<int64_t>& group_lengths, int64_t block, int64_t ring_rank,
                                     int64_t tokens) {
  std::vector<int64_t> cost;
  cost.reserve(group_lengths.size());
  // A tile costs its K steps and about one more for its epilogue.
  for (const int64_t length : group_lengths) cost.push_back(line_tile_steps(length, block, ring_rank) + 1);
  return balanced_tile_order(cost, (tokens + wgmma::kTokens - 1) / wgmma::kTokens,
                             wgmma::kLineBlocksPerSM * device::multiprocessors());
}

}  // namespace pixelfly::kernels::cuda
