// Image classification data sets in the MNIST file layout: Fashion-MNIST from the Debian package
// dataset-fashion-mnist by default, or any directory holding
//   train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
//   t10k-images-idx3-ubyte[.gz],  t10k-labels-idx1-ubyte[.gz].
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "pixelfly/data/image_dataset.h"

namespace pixelfly::data {

// Fashion-MNIST's pixel mean and standard deviation (pixels scaled to [0, 1]), one channel.
inline const std::vector<double> kFashionMnistMean = {0.2860};
inline const std::vector<double> kFashionMnistStd = {0.3530};

// Where the Debian package dataset-fashion-mnist installs the data.
std::string default_fashion_mnist_dir();

// The train (60 000 images for (Fashion-)MNIST) or test (10 000) split, images as
// (N, 1, height, width) uint8, labels (N) int64. Throws
// std::runtime_error naming the file and the problem: missing files (both names tried),
// anything read_idx_file rejects, images that are not 3-D, labels that are not 1-D, counts that
// differ between images and labels, or labels outside [0, classes).
ImageDataset load_mnist_format(const std::string& dir, bool train, int64_t classes = 10);

}  // namespace pixelfly::data
