// CIFAR-10 binary batches: whole files read, sizes and labels validated, records unpacked.
#include "pixelfly/data/cifar10.h"

#include <ATen/ATen.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace pixelfly::data {
namespace {

constexpr int64_t kPixelBytes = kCifar10RecordBytes - 1;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("CIFAR-10 file '" + path + "': " + what);
}

// The whole file (POSIX calls, not std::filesystem, whose symbols LibTorch's libraries export).
std::vector<uint8_t> read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat info;
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    fail(path, "is not a regular file");
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(info.st_size));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t got = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      const int error = got < 0 ? errno : 0;
      ::close(fd);
      fail(path, got < 0 ? std::string("cannot read: ") + std::strerror(error)
                         : "shrank while being read (" + std::to_string(done) + " of " +
                               std::to_string(bytes.size()) + " bytes)");
    }
    done += static_cast<size_t>(got);
  }
  ::close(fd);
  return bytes;
}

}  // namespace

ImageDataset load_cifar10(const std::string& dir, bool train) {
  std::vector<std::string> paths;
  if (train) {
    for (int i = 1; i <= 5; ++i) paths.push_back(dir + "/data_batch_" + std::to_string(i) + ".bin");
  } else {
    paths.push_back(dir + "/test_batch.bin");
  }
  // First every file's size (so a bad file is reported before anything is read), then the
  // records, one file in memory at a time.
  std::vector<int64_t> counts;
  int64_t records = 0;
  for (const std::string& path : paths) {
    struct stat info;
    if (::stat(path.c_str(), &info) != 0) {
      fail(path, std::string("cannot open: ") + std::strerror(errno) +
                     " (expected the binary version of CIFAR-10, cifar-10-batches-bin)");
    }
    if (!S_ISREG(info.st_mode)) fail(path, "is not a regular file");
    const int64_t bytes = static_cast<int64_t>(info.st_size);
    if (bytes == 0 || bytes % kCifar10RecordBytes != 0) {
      fail(path, "size " + std::to_string(bytes) + " bytes is not a positive multiple of the " +
                     std::to_string(kCifar10RecordBytes) + "-byte record (1 label byte + 3072 pixel bytes); " +
                     "truncated or not a CIFAR-10 binary batch?");
    }
    counts.push_back(bytes / kCifar10RecordBytes);
    records += counts.back();
  }
  ImageDataset out;
  out.classes = 10;
  out.images = at::empty({records, 3, 32, 32}, at::kByte);
  out.labels = at::empty({records}, at::kLong);
  uint8_t* images = out.images.data_ptr<uint8_t>();
  int64_t* labels = out.labels.data_ptr<int64_t>();
  int64_t n = 0;
  for (size_t f = 0; f < paths.size(); ++f) {
    const std::vector<uint8_t> bytes = read_file(paths[f]);
    if (static_cast<int64_t>(bytes.size()) != counts[f] * kCifar10RecordBytes) {
      fail(paths[f], "changed size while being read");
    }
    for (int64_t r = 0; r < counts[f]; ++r, ++n) {
      const uint8_t* record = bytes.data() + r * kCifar10RecordBytes;
      if (record[0] > 9) {
        fail(paths[f], "record " + std::to_string(r) + " has label " + std::to_string(record[0]) +
                           ", expected 0 to 9");
      }
      labels[n] = record[0];
      std::memcpy(images + n * kPixelBytes, record + 1, kPixelBytes);
    }
  }
  return out;
}

}  // namespace pixelfly::data
