// Small file-system helpers on POSIX calls (std::filesystem is avoided: the LibTorch wheel's
// libtorch.so exports its own copies of those symbols).
#pragma once

#include <string>
#include <vector>

namespace pixelfly::io {

bool is_file(const std::string& path);       // a regular file (symbolic links followed)
bool is_directory(const std::string& path);  // a directory (symbolic links followed)

// mkdir -p. Throws std::runtime_error naming the directory and the system error.
void make_directories(const std::string& path);

// Names in a directory, without "." and "..", sorted. Throws std::runtime_error naming it.
std::vector<std::string> list_directory(const std::string& path);

}  // namespace pixelfly::io
