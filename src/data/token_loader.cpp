// Random training windows from (seed, step), prefetched; ordered evaluation windows.
#include "pixelfly/data/token_loader.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <random>
#include <vector>

namespace pixelfly::data {

TokenLoader::TokenLoader(at::Tensor tokens, TokenLoaderOptions options)
    : tokens_(std::move(tokens)), options_(options) {
  TORCH_CHECK(options_.batch_size > 0, "token loader: batch_size must be >= 1, got ", options_.batch_size);
  TORCH_CHECK(options_.context > 0, "token loader: context must be >= 1, got ", options_.context);
  TORCH_CHECK(options_.prefetch >= 0, "token loader: prefetch must be >= 0, got ", options_.prefetch);
  TORCH_CHECK(tokens_.dim() == 1, "token loader: tokens must be 1-D, got shape ", tokens_.sizes());
  TORCH_CHECK(tokens_.scalar_type() == at::kByte || tokens_.scalar_type() == at::kLong,
              "token loader: tokens must be uint8 or int64, got ", tokens_.scalar_type());
  TORCH_CHECK(tokens_.device().is_cpu(), "token loader: tokens must be on the CPU, got ", tokens_.device());
  TORCH_CHECK(tokens_.size(0) > options_.context, "token loader: ", tokens_.size(0),
              " tokens are too few for one window of context ", options_.context, " (need at least ",
              options_.context + 1, ")");
  if (tokens_.scalar_type() == at::kLong) {
    const int64_t smallest = tokens_.min().item<int64_t>();
    TORCH_CHECK(smallest >= 0, "token loader: token ids must be >= 0, got ", smallest);
  }
  tokens_ = tokens_.contiguous();
}

TokenBatch TokenLoader::windows_at(const at::Tensor& offsets) const {
  const at::Tensor positions = offsets.unsqueeze(1) + at::arange(options_.context + 1, at::kLong).unsqueeze(0);
  const at::Tensor windows = tokens_.index_select(0, positions.reshape({-1})).view(positions.sizes()).to(at::kLong);
  const int64_t t = options_.context;
  return {windows.narrow(1, 0, t).contiguous(), windows.narrow(1, 1, t).contiguous()};
}

TokenBatch TokenLoader::train_batch(int64_t step) const {
  TORCH_CHECK(step >= 0, "token loader: step must be >= 0, got ", step);
  // Offsets in [0, size - context - 1], so every window has its context + 1 tokens.
  const uint64_t choices = static_cast<uint64_t>(size() - options_.context);
  std::mt19937_64 rng(options_.seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(step) * 0xBF58476D1CE4E5B9ULL +
                      0x94D049BB133111EBULL);
  std::vector<int64_t> offsets(options_.batch_size);
  for (int64_t& o : offsets) o = static_cast<int64_t>(rng() % choices);
  return windows_at(at::tensor(offsets, at::kLong));
}

void TokenLoader::seek(int64_t step) {
  TORCH_CHECK(step >= 0, "token loader: step must be >= 0, got ", step);
  prefetcher_.stop();
  step_ = step;
  started_ = true;
  if (options_.prefetch > 0) {
    prefetcher_.start(options_.prefetch, -1, [this, step](int64_t i) { return train_batch(step + i); });
  }
}

TokenBatch TokenLoader::next() {
  if (!started_) seek(0);
  const int64_t step = step_++;
  return options_.prefetch == 0 ? train_batch(step) : prefetcher_.next();
}

int64_t TokenLoader::eval_windows() const { return (size() - 1) / options_.context; }

int64_t TokenLoader::eval_batches(int64_t max_batches) const {
  const int64_t all = (eval_windows() + options_.batch_size - 1) / options_.batch_size;
  return max_batches > 0 ? std::min(all, max_batches) : all;
}

TokenBatch TokenLoader::eval_batch(int64_t index) const {
  TORCH_CHECK(index >= 0 && index < eval_batches(), "token loader: evaluation batch ", index, " is outside [0, ",
              eval_batches(), ")");
  const int64_t first = index * options_.batch_size;
  const int64_t count = std::min(options_.batch_size, eval_windows() - first);
  return windows_at(at::arange(first, first + count, at::kLong).mul_(options_.context));
}

}  // namespace pixelfly::data
