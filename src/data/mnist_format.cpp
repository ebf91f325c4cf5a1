// MNIST-layout directories (gzip or plain IDX files), validated.
#include "pixelfly/data/mnist_format.h"

#include <ATen/ATen.h>

#include <unistd.h>

#include <stdexcept>

#include "pixelfly/data/idx_file.h"

namespace pixelfly::data {
namespace {

// std::filesystem is avoided on purpose: LibTorch's libtorch.so exports some of its symbols,
// and calls from code built with another libstdc++ can resolve into them and crash.
std::string find_file(const std::string& dir, const std::string& stem) {
  for (const std::string& name : {stem + ".gz", stem}) {
    const std::string path = dir + "/" + name;
    if (::access(path.c_str(), F_OK) == 0) return path;
  }
  throw std::runtime_error("data directory '" + dir + "' has neither " + stem + ".gz nor " + stem +
                           " (expected the MNIST file layout)");
}

}  // namespace

std::string default_fashion_mnist_dir() { return "/usr/share/datasets/fashion-mnist"; }

ImageDataset load_mnist_format(const std::string& dir, bool train, int64_t classes) {
  const std::string prefix = train ? "train" : "t10k";
  const std::string images_path = find_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_file(dir, prefix + "-labels-idx1-ubyte");
  ImageDataset out;
  out.classes = classes;
  out.images = read_idx_file(images_path);
  const at::Tensor labels = read_idx_file(labels_path);
  if (out.images.dim() != 3) {
    throw std::runtime_error("IDX file '" + images_path + "': images must have 3 dimensions (count, height, width), got " +
                             std::to_string(out.images.dim()));
  }
  if (labels.dim() != 1) {
    throw std::runtime_error("IDX file '" + labels_path + "': labels must have 1 dimension, got " +
                             std::to_string(labels.dim()));
  }
  if (labels.size(0) != out.images.size(0)) {
    throw std::runtime_error("'" + labels_path + "' has " + std::to_string(labels.size(0)) + " labels but '" +
                             images_path + "' has " + std::to_string(out.images.size(0)) + " images");
  }
  if (labels.numel() > 0 && labels.max().item<int64_t>() >= classes) {
    throw std::runtime_error("IDX file '" + labels_path + "': label " + std::to_string(labels.max().item<int64_t>()) +
                             " is outside [0, " + std::to_string(classes) + ")");
  }
  out.images = out.images.unsqueeze(1);  // one channel
  out.labels = labels.to(at::kLong);
  return out;
}

}  // namespace pixelfly::data
