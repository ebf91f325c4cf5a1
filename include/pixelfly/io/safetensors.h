// Reading and writing the safetensors format: named tensors plus string metadata in one file
// that PyTorch, JAX and the Hugging Face tools read without running any code (unlike pickle).
//
// Layout of a file:
//   bytes [0, 8)       N, the header length, unsigned 64-bit little-endian
//   bytes [8, 8 + N)   UTF-8 JSON object: {"<name>": {"dtype": "F32", "shape": [2, 3],
//                      "data_offsets": [begin, end]}, ..., optionally "__metadata__": {"k": "v"}}
//   bytes [8 + N, end) the data buffer: each tensor's elements, row-major, little-endian, at
//                      [begin, end) relative to the buffer's start; the tensors tile the buffer
//                      exactly (no gaps, no overlaps, nothing after the last one).
// Supported dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL (torch double, float, half,
// bfloat16, long, int, short, char, byte, bool).
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace pixelfly::io {

// Tensors in order, each with its name, plus the file's "__metadata__" strings.
struct NamedTensors {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  std::map<std::string, std::string> metadata;
};

// Writes `data` to `path` atomically (temporary file, flush, rename: the previous file survives
// any failure). Tensors may live on any device and have any strides: each is copied to a
// contiguous CPU tensor, one at a time, while writing. The header lists the tensors in the
// given order with increasing offsets, "__metadata__" first when there is any, and is padded
// with spaces to a multiple of 8 bytes so that the data buffer is 8-byte aligned.
// Throws c10::Error naming the file and the problem for an empty, repeated or reserved
// ("__metadata__") name, an undefined or non-strided tensor, an unsupported dtype, or names or
// metadata that are not valid UTF-8; std::runtime_error when the file cannot be written.
void save_safetensors(const std::string& path, const NamedTensors& data);

// Reads a whole file into CPU tensors, returned in file order (increasing data offsets) with
// the metadata. The file is validated before any tensor is read, and every error is a
// c10::Error naming the file and the problem: unreadable or shorter than 8 bytes; a header
// length beyond the file or above 100 MB; a header that is not a JSON object, repeats a name
// or has an entry that is not {"dtype", "shape", "data_offsets"}; an unknown dtype; a shape
// that is not a list of non-negative integers; data offsets outside the buffer, overlapping,
// leaving a gap or not equal to shape x element size; bytes after the last tensor;
// "__metadata__" that is not an object of strings; a BOOL byte other than 0 or 1.
NamedTensors load_safetensors(const std::string& path);

}  // namespace pixelfly::io
