// IDX reading through zlib's gz* interface, which reads gzip and plain files alike.
#include "pixelfly/data/idx_file.h"

#include <ATen/ATen.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

namespace pixelfly::data {
namespace {

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("IDX file '" + path + "': " + what);
}

// Reads exactly `bytes` bytes or reports how many there were.
int64_t read_fully(gzFile file, void* out, int64_t bytes, const std::string& path) {
  int64_t done = 0;
  auto* dst = static_cast<unsigned char*>(out);
  while (done < bytes) {
    const unsigned chunk = static_cast<unsigned>(std::min<int64_t>(bytes - done, 1 << 30));
    const int got = gzread(file, dst + done, chunk);
    if (got < 0) {
      int code = 0;
      fail(path, std::string("read error: ") + gzerror(file, &code));
    }
    if (got == 0) break;
    done += got;
  }
  return done;
}

}  // namespace

at::Tensor read_idx_file(const std::string& path) {
  GzFile file(gzopen(path.c_str(), "rb"));
  if (!file) fail(path, std::string("cannot open: ") + std::strerror(errno));
  unsigned char magic[4];
  if (read_fully(file.get(), magic, 4, path) != 4) fail(path, "truncated: shorter than the 4-byte magic number");
  if (magic[0] != 0 || magic[1] != 0) {
    fail(path, "bad magic number: the first two bytes must be 0, got " + std::to_string(magic[0]) + ", " +
                   std::to_string(magic[1]) + " (not an IDX file?)");
  }
  if (magic[2] != 0x08) {
    char type[8];
    std::snprintf(type, sizeof(type), "0x%02x", magic[2]);
    fail(path, std::string("element type ") + type + " is not supported (only unsigned bytes, 0x08)");
  }
  const int dims = magic[3];
  if (dims < 1 || dims > 4) fail(path, "number of dimensions must be 1 to 4, got " + std::to_string(dims));
  std::vector<int64_t> shape(dims);
  int64_t count = 1;
  for (int d = 0; d < dims; ++d) {
    unsigned char be[4];
    if (read_fully(file.get(), be, 4, path) != 4) fail(path, "truncated inside the header");
    shape[d] = (int64_t{be[0]} << 24) | (int64_t{be[1]} << 16) | (int64_t{be[2]} << 8) | int64_t{be[3]};
    count *= shape[d];
  }
  at::Tensor out = at::empty(shape, at::kByte);
  const int64_t got = read_fully(file.get(), out.data_ptr<uint8_t>(), count, path);
  if (got != count) {
    fail(path, "truncated: the header promises " + std::to_string(count) + " bytes of data, the file has " +
                   std::to_string(got));
  }
  unsigned char extra;
  if (read_fully(file.get(), &extra, 1, path) != 0) {
    fail(path, "trailing bytes after the " + std::to_string(count) + " bytes the header promises");
  }
  return out;
}

}  // namespace pixelfly::data
