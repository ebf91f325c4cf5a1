// Byte-level language-modelling corpora: any text files read as a stream of bytes (vocabulary
// 256), a train/validation split, and the default corpus, the King James Bible as printed by
// the `bible` program of the Debian package bible-kjv (about 4.3 MB), cached in a file.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace pixelfly::data {

// Tokens of a byte-level corpus are its bytes.
constexpr int64_t kByteVocab = 256;

// The bytes of `paths`, concatenated in the order given, as a uint8 tensor (total bytes).
// Throws std::runtime_error naming the file for one that is missing or cannot be opened,
// cannot be read (a directory, an I/O error) or is empty, and for an empty list.
at::Tensor load_text_files(const std::vector<std::string>& paths);

struct TextSplit {
  at::Tensor train;       // uint8, the first bytes (a view of the corpus)
  at::Tensor validation;  // uint8, the last floor(validation_fraction * size) bytes (a view)
};

// Splits a 1-D corpus into train and validation (the last `validation_fraction` of it).
// Throws c10::Error for a corpus that is not 1-D or a fraction outside [0, 1).
TextSplit split_text(const at::Tensor& bytes, double validation_fraction = 0.05);

// The command whose output is the default corpus (the whole Bible, Genesis 1:1 to Revelation
// 22:21, with book and chapter headings; `bible` writes it all without paging).
std::string kjv_command();

// Runs kjv_command() and returns what it prints. Throws std::runtime_error when the program is
// missing (saying to `apt-get install bible-kjv` or to pass text files instead), exits with a
// non-zero status, or prints less than a whole Bible would.
std::string generate_kjv_text();

// The default corpus as uint8 bytes: read from `cache_path` when that file exists, otherwise
// generated with generate_kjv_text() and written to `cache_path` atomically so later runs read
// it directly (an empty `cache_path` disables the cache). Errors as for generate_kjv_text and
// load_text_files, or std::runtime_error naming the cache file when it cannot be written.
at::Tensor load_default_corpus(const std::string& cache_path);

// `paths` when given (load_text_files), otherwise load_default_corpus(cache_path).
at::Tensor load_text_corpus(const std::vector<std::string>& paths, const std::string& cache_path);

}  // namespace pixelfly::data
