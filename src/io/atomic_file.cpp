// Atomic file writes through a temporary file, fsync and rename.
#include "pixelfly/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace pixelfly::io {
namespace {

std::string temp_path_for(const std::string& path) {
  return path + ".tmp." + std::to_string(::getpid());
}

void sync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error("cannot open '" + path + "' to flush it: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw std::runtime_error("cannot flush '" + path + "' to disk: " + std::strerror(err));
}

}  // namespace

void replace_file_atomically(const std::string& path, const std::function<void(const std::string&)>& write) {
  const std::string temp = temp_path_for(path);
  try {
    write(temp);
    sync_file(temp);
    if (std::rename(temp.c_str(), path.c_str()) != 0) {
      throw std::runtime_error("cannot move '" + temp + "' to '" + path + "': " + std::strerror(errno));
    }
  } catch (...) {
    std::remove(temp.c_str());
    throw;
  }
}

void write_file_atomically(const std::string& path, const std::string& contents) {
  replace_file_atomically(path, [&contents](const std::string& temp) {
    FILE* f = std::fopen(temp.c_str(), "wb");
    if (f == nullptr) throw std::runtime_error("cannot create '" + temp + "': " + std::strerror(errno));
    const size_t written = std::fwrite(contents.data(), 1, contents.size(), f);
    const bool closed = std::fclose(f) == 0;
    if (written != contents.size() || !closed) {
      throw std::runtime_error("cannot write '" + temp + "': " + std::strerror(errno));
    }
  });
}

}  // namespace pixelfly::io
