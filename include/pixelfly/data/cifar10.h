// CIFAR-10 in its binary version (cifar-10-batches-bin): data_batch_1.bin ... data_batch_5.bin
// (training, 10 000 images each) and test_batch.bin (10 000), each a sequence of 3073-byte
// records: one label byte (0 to 9), then 3072 pixel bytes, the 32 x 32 red, green and blue
// planes in turn (channel-major, rows top to bottom).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "pixelfly/data/image_dataset.h"

namespace pixelfly::data {

// Per-channel (red, green, blue) mean and standard deviation of CIFAR-10's training pixels
// scaled to [0, 1], for ImageLoaderOptions::mean and ::std.
inline const std::vector<double> kCifar10Mean = {0.4914, 0.4822, 0.4465};
inline const std::vector<double> kCifar10Std = {0.2470, 0.2435, 0.2616};

// Bytes of one record: the label, then 3 x 32 x 32 pixels.
constexpr int64_t kCifar10RecordBytes = 1 + 3 * 32 * 32;

// The training split (the five data batches in order, 50 000 images) or the test split
// (10 000) from `dir`: images uint8 (N, 3, 32, 32), labels int64 (N), classes 10. Throws
// std::runtime_error naming the file and the problem: missing or unreadable, empty, a size
// that is not a multiple of the 3073-byte record (giving the size), or a label above 9 (giving
// the record).
ImageDataset load_cifar10(const std::string& dir, bool train);

}  // namespace pixelfly::data
