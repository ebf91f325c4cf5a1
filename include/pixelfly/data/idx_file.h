// Reader for IDX files, the format of MNIST and Fashion-MNIST (gzip-compressed or plain):
// a 4-byte magic (0, 0, element type, number of dimensions), one big-endian uint32 size per
// dimension, then the elements. Only unsigned-byte elements (type 0x08) are accepted.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace pixelfly::data {

// The array as a uint8 tensor of the file's shape. Throws std::runtime_error naming the file
// and what is wrong: missing or unreadable, bad magic number, unsupported element type,
// truncated (fewer bytes than the header promises) or trailing bytes.
at::Tensor read_idx_file(const std::string& path);

}  // namespace pixelfly::data
