// Shuffled, augmented, normalised batches, prefetched on a background thread.
#include "pixelfly/data/image_loader.h"

#include <ATen/ATen.h>

#include <random>

namespace pixelfly::data {
namespace {

// The epoch's sample order: a Fisher-Yates shuffle seeded by (seed, epoch).
std::vector<int64_t> epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  if (!shuffle) return order;
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(epoch));
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[rng() % static_cast<uint64_t>(i + 1)]);
  return order;
}

}  // namespace

ImageLoader::ImageLoader(ImageDataset data, ImageLoaderOptions options) : data_(std::move(data)), options_(options) {
  TORCH_CHECK(options_.batch_size > 0, "image loader: batch_size must be >= 1, got ", options_.batch_size);
  TORCH_CHECK(options_.crop_padding >= 0, "image loader: crop_padding must be >= 0, got ", options_.crop_padding);
  TORCH_CHECK(options_.prefetch >= 0, "image loader: prefetch must be >= 0, got ", options_.prefetch);
  TORCH_CHECK(data_.images.dim() == 4 && data_.labels.dim() == 1 && data_.images.size(0) == data_.labels.size(0),
              "image loader: expected images (N, C, H, W) and labels (N), got ", data_.images.sizes(), " and ",
              data_.labels.sizes());
  TORCH_CHECK(data_.images.scalar_type() == at::kByte, "image loader: images must be uint8, got ",
              data_.images.scalar_type());
  const int64_t channels = data_.images.size(1);
  TORCH_CHECK(static_cast<int64_t>(options_.mean.size()) == channels &&
                  static_cast<int64_t>(options_.std.size()) == channels,
              "image loader: mean and std need one value per channel; the images have ", channels,
              " channel(s), mean has ", options_.mean.size(), " and std ", options_.std.size(), " value(s)");
  for (size_t c = 0; c < options_.std.size(); ++c) {
    TORCH_CHECK(options_.std[c] > 0, "image loader: std must be > 0, got ", options_.std[c], " for channel ", c);
  }
  mean_ = at::tensor(options_.mean, at::kDouble).to(at::kFloat).view({1, channels, 1, 1});
  std_ = at::tensor(options_.std, at::kDouble).to(at::kFloat).view({1, channels, 1, 1});
}

int64_t ImageLoader::batches_per_epoch() const {
  const int64_t n = size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

ImageBatch ImageLoader::make_batch(int64_t epoch, int64_t index) const {
  return make_batch(epoch_order(size(), options_.shuffle, options_.seed, epoch), epoch, index);
}

ImageBatch ImageLoader::make_batch(const std::vector<int64_t>& order, int64_t epoch, int64_t index) const {
  const int64_t begin = index * options_.batch_size;
  const int64_t end = std::min<int64_t>(begin + options_.batch_size, size());
  const at::Tensor indices = at::tensor(std::vector<int64_t>(order.begin() + begin, order.begin() + end));
  const uint64_t augment_seed = (options_.seed ^ 0xA5A5A5A5ULL) * 1000003ULL + static_cast<uint64_t>(epoch) * 65537ULL +
                                static_cast<uint64_t>(index);
  return {prepare(indices, augment_seed), data_.labels.index_select(0, indices)};
}

at::Tensor ImageLoader::augmented_images(const std::vector<int64_t>& indices, int64_t draw) const {
  for (const int64_t i : indices) {
    TORCH_CHECK(i >= 0 && i < size(), "image loader: index ", i, " is outside the data set [0, ", size(), ")");
  }
  const uint64_t augment_seed = (options_.seed ^ 0x5A5A5A5A5A5AULL) * 0xD1B54A32D192ED03ULL + static_cast<uint64_t>(draw);
  return prepare(at::tensor(indices, at::kLong), augment_seed);
}

at::Tensor ImageLoader::prepare(const at::Tensor& indices, uint64_t augment_seed) const {
  at::Tensor images = data_.images.index_select(0, indices).to(at::kFloat).div_(255.0);
  if (options_.augment) {
    const int64_t pad = options_.crop_padding, h = images.size(2), w = images.size(3);
    const at::Tensor padded = at::constant_pad_nd(images, {pad, pad, pad, pad}, 0.0);
    std::mt19937_64 rng(augment_seed);
    for (int64_t i = 0; i < images.size(0); ++i) {
      const int64_t dy = static_cast<int64_t>(rng() % static_cast<uint64_t>(2 * pad + 1));
      const int64_t dx = static_cast<int64_t>(rng() % static_cast<uint64_t>(2 * pad + 1));
      at::Tensor crop = padded[i].narrow(1, dy, h).narrow(2, dx, w);
      if (options_.horizontal_flip && (rng() & 1)) crop = crop.flip({2});
      images[i].copy_(crop);
    }
  }
  return images.sub_(mean_).div_(std_).contiguous();
}

void ImageLoader::start_epoch(int64_t epoch) {
  prefetcher_.stop();
  epoch_ = epoch;
  next_index_ = 0;
  if (options_.prefetch == 0) return;
  prefetcher_.start(options_.prefetch, batches_per_epoch(),
                    [this, epoch, order = epoch_order(size(), options_.shuffle, options_.seed, epoch)](int64_t index) {
                      return make_batch(order, epoch, index);
                    });
}

std::optional<ImageBatch> ImageLoader::next() {
  TORCH_CHECK(epoch_ >= 0, "image loader: call start_epoch() before next()");
  if (next_index_ >= batches_per_epoch()) return std::nullopt;
  const int64_t index = next_index_++;
  if (options_.prefetch == 0) return make_batch(epoch_, index);
  return prefetcher_.next();
}

}  // namespace pixelfly::data
