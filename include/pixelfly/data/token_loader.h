// Batches of token windows for training a causal language model: inputs (B, T) and targets
// (B, T), the targets being the inputs shifted by one token. Training batches take windows at
// random offsets drawn from (seed, step) alone, prepared on a background thread a few steps
// ahead, so a run is reproducible whatever the thread timing and can resume at any step;
// evaluation walks non-overlapping windows in order.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "pixelfly/data/prefetcher.h"

namespace pixelfly::data {

struct TokenLoaderOptions {
  int64_t batch_size = 16;  // windows per batch (B)
  int64_t context = 256;    // tokens per window (T)
  int64_t prefetch = 2;     // training batches prepared ahead (0: on the caller's thread)
  uint64_t seed = 0;
};

struct TokenBatch {
  at::Tensor inputs;   // int64, (B, T): tokens[o .. o + T) for each window offset o
  at::Tensor targets;  // int64, (B, T): tokens[o + 1 .. o + T + 1)
};

class TokenLoader {
 public:
  // `tokens`: a 1-D uint8 (bytes, vocabulary 256) or int64 tensor of token ids on the CPU, with
  // at least context + 1 tokens. Throws c10::Error for other shapes, dtypes or devices, too
  // few tokens, negative int64 ids, a non-positive batch size or context, or negative prefetch.
  TokenLoader(at::Tensor tokens, TokenLoaderOptions options);

  // --- training: an endless sequence of batches, one per step ---
  // The training batch of `step`: batch_size windows whose offsets are drawn uniformly from
  // [0, size() - context - 1] by a generator seeded with (seed, step) only.
  TokenBatch train_batch(int64_t step) const;
  // Makes next() continue at `step` (restarting the prefetch thread). Throws for step < 0.
  void seek(int64_t step);
  // train_batch(step()) and advances step(); the first call without seek() starts at step 0.
  TokenBatch next();
  int64_t step() const { return step_; }

  // --- evaluation: non-overlapping windows in order, window w at offset w * context ---
  // Windows in the data: (size() - 1) / context, the last partial window dropped.
  int64_t eval_windows() const;
  // Batches of eval_windows() (the last one may be smaller), capped at `max_batches` when it is
  // positive.
  int64_t eval_batches(int64_t max_batches = 0) const;
  // Evaluation batch `index`, windows index * batch_size onwards. Throws c10::Error for an
  // index outside [0, eval_batches()).
  TokenBatch eval_batch(int64_t index) const;

  int64_t size() const { return tokens_.size(0); }
  const TokenLoaderOptions& options() const { return options_; }

 private:
  TokenBatch windows_at(const at::Tensor& offsets) const;  // offsets: int64, (B)

  at::Tensor tokens_;
  TokenLoaderOptions options_;
  int64_t step_ = 0;
  bool started_ = false;
  Prefetcher<TokenBatch> prefetcher_;  // declared last: its thread reads the members above
};

}  // namespace pixelfly::data
