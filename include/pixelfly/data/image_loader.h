// Batches of an image data set for training and evaluation: shuffling, augmentation (random
// crop with zero padding, horizontal flip) and per-channel normalisation, produced on a
// background thread a few batches ahead of the trainer. Everything random comes from
// (seed, epoch, batch index), so a run is reproducible whatever the thread timing.
#pragma once

#include <ATen/core/Tensor.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "pixelfly/data/mnist_format.h"

namespace pixelfly::data {

struct ImageLoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;
  bool drop_last = false;
  bool augment = false;       // random crop with padding + horizontal flip
  int64_t crop_padding = 2;   // pixels of zero padding before the random crop
  bool horizontal_flip = true;
  double mean = 0.2860;       // of the pixel values scaled to [0, 1] (Fashion-MNIST's)
  double std = 0.3530;
  int64_t prefetch = 2;       // batches prepared ahead (0: prepared on the caller's thread)
  uint64_t seed = 0;
};

struct ImageBatch {
  at::Tensor images;  // float32, (batch, 1, height, width), normalised
  at::Tensor labels;  // int64, (batch)
};

class ImageLoader {
 public:
  // Throws c10::Error for a non-positive batch size, negative padding or a non-positive std.
  ImageLoader(ImageDataset data, ImageLoaderOptions options);
  ~ImageLoader();
  ImageLoader(const ImageLoader&) = delete;
  ImageLoader& operator=(const ImageLoader&) = delete;

  // Begins epoch `epoch` (its order and augmentation depend only on seed and epoch).
  void start_epoch(int64_t epoch);
  // The next batch of the current epoch, or nothing when the epoch is over.
  std::optional<ImageBatch> next();
  int64_t batches_per_epoch() const;
  int64_t size() const { return data_.images.size(0); }

  // Batch `index` of `epoch`, computed directly (what the background thread runs).
  ImageBatch make_batch(int64_t epoch, int64_t index) const;

 private:
  ImageBatch make_batch(const std::vector<int64_t>& order, int64_t epoch, int64_t index) const;
  void stop_worker();

  ImageDataset data_;
  ImageLoaderOptions options_;
  int64_t epoch_ = -1;
  int64_t next_index_ = 0;
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<ImageBatch> ready_;
  bool stopping_ = false;
};

}  // namespace pixelfly::data
