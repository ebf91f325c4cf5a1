// The in-memory form of every image classification data set (Fashion-MNIST, CIFAR-10,
// synthetic): uint8 pixels in (count, channels, height, width) and int64 labels.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace pixelfly::data {

struct ImageDataset {
  at::Tensor images;  // uint8, (N, C, H, W): channel-major pixels in [0, 255]
  at::Tensor labels;  // int64, (N), in [0, classes)
  int64_t classes = 10;
};

}  // namespace pixelfly::data
