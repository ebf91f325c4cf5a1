// Batches of an image data set for training and evaluation: shuffling, augmentation (random
// crop with zero padding, horizontal flip, the same for every channel of an image) and
// per-channel normalisation, produced on a background thread a few batches ahead of the
// trainer. Everything random comes from (seed, epoch, batch index), so a run is reproducible
// whatever the thread timing.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <vector>

#include "pixelfly/data/image_dataset.h"
#include "pixelfly/data/mnist_format.h"
#include "pixelfly/data/prefetcher.h"

namespace pixelfly::data {

struct ImageLoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;
  bool drop_last = false;
  bool augment = false;       // random crop with padding + horizontal flip
  int64_t crop_padding = 2;   // pixels of zero padding before the random crop
  bool horizontal_flip = true;
  // Per-channel mean and standard deviation of the pixel values scaled to [0, 1], one value per
  // channel of the data set (the defaults are Fashion-MNIST's, for one channel; use
  // kCifar10Mean / kCifar10Std for CIFAR-10).
  std::vector<double> mean = kFashionMnistMean;
  std::vector<double> std = kFashionMnistStd;
  int64_t prefetch = 2;       // batches prepared ahead (0: prepared on the caller's thread)
  uint64_t seed = 0;
};

struct ImageBatch {
  at::Tensor images;  // float32, (batch, C, height, width), normalised per channel
  at::Tensor labels;  // int64, (batch)
};

class ImageLoader {
 public:
  // Throws c10::Error for a non-positive batch size, negative padding or prefetch, images that
  // are not uint8 (N, C, H, W) with labels (N), mean or std without exactly one value per
  // channel, or a std value that is not positive.
  ImageLoader(ImageDataset data, ImageLoaderOptions options);

  // Begins epoch `epoch` (its order and augmentation depend only on seed and epoch).
  void start_epoch(int64_t epoch);
  // The next batch of the current epoch, or nothing when the epoch is over.
  std::optional<ImageBatch> next();
  int64_t batches_per_epoch() const;
  int64_t size() const { return data_.images.size(0); }

  // Batch `index` of `epoch`, computed directly (what the background thread runs).
  ImageBatch make_batch(int64_t epoch, int64_t index) const;

  // The images at `indices`, float32 (indices.size(), C, H, W), normalised and, when
  // options.augment, augmented with randomness drawn from (seed, draw) only, a stream apart
  // from the batches' (for batch-norm recalibration, which picks its own samples). Throws
  // c10::Error for an index outside [0, size()).
  at::Tensor augmented_images(const std::vector<int64_t>& indices, int64_t draw) const;

 private:
  ImageBatch make_batch(const std::vector<int64_t>& order, int64_t epoch, int64_t index) const;
  // The images at `indices` (int64), normalised, augmented from a generator seeded with
  // `augment_seed` when options.augment.
  at::Tensor prepare(const at::Tensor& indices, uint64_t augment_seed) const;

  ImageDataset data_;
  ImageLoaderOptions options_;
  at::Tensor mean_, std_;  // float32, (1, C, 1, 1)
  int64_t epoch_ = -1;
  int64_t next_index_ = 0;
  Prefetcher<ImageBatch> prefetcher_;  // declared last: its thread reads the members above
};

}  // namespace pixelfly::data
